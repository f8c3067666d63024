import type { Readable } from 'node:stream';

/** A byte range, both ends inclusive (as in HTTP `Range`). */
export interface ByteRange {
  start: number;
  end: number;
}

/** A stored blob as a listing names it. */
export interface StoredBlob {
  key: string;
  size: number;
  /** When it was stored: the orphan sweep leaves blobs younger than its grace period alone. */
  modifiedAt: Date;
}

/**
 * Where bundle blobs live (DESIGN §4, §7): the data directory (or
 * KERNEX_BUNDLE_DIR) by default, or S3-compatible storage. Every backend passes
 * the one contract suite in `bundle-storage.contract.ts`. A backend that cannot
 * be reached throws {@link StorageUnavailableError}, which the API answers 503.
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
  /** Every stored blob, in no particular order (for the orphan sweep). */
  list(): AsyncIterable<StoredBlob>;
  /** Releases connections, if the backend holds any. */
  close?(): void;
}

/** The blob named does not exist in the storage. */
export class BlobNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`blob '${key}' not found`);
    this.name = 'BlobNotFoundError';
  }
}

/** The storage backend could not be reached or failed (S3 down, refused, timed out). */
export class StorageUnavailableError extends Error {
  constructor(
    readonly op: string,
    options: { cause: unknown },
  ) {
    super(`bundle storage unavailable (${op}): ${(options.cause as Error)?.message ?? String(options.cause)}`, options);
    this.name = 'StorageUnavailableError';
  }
}
