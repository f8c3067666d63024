import type { Readable } from 'node:stream';

/** A byte range, both ends inclusive (as in HTTP `Range`). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where bundle blobs live (DESIGN §4): the data directory by default, S3-like
 * stores later. Every backend passes the one contract suite in
 * `bundle-storage.contract.ts`.
 */
export interface BundleStorage {
  /** A fresh path where an upload may be staged; it lives on the backend's file system when it has one, so `put` can rename. */
  tempPath(): string;
  /** Takes the staged file at `tempFile` (moving or copying it, then removing it) and stores it under `key`. */
  put(key: string, tempFile: string): Promise<void>;
  /** Reads the blob, or only `range` of it. Throws {@link BlobNotFoundError} when absent. */
  open(key: string, range?: ByteRange): Promise<Readable>;
  /** Size of the blob, or undefined when absent. */
  stat(key: string): Promise<{ size: number } | undefined>;
  /** Removes the blob; removing an absent one is not an error. */
  delete(key: string): Promise<void>;
}

/** The blob named does not exist in the storage. */
export class BlobNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`blob '${key}' not found`);
    this.name = 'BlobNotFoundError';
  }
}
