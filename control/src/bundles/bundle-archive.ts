import { createHash } from 'node:crypto';
import fs, { type FileHandle } from 'node:fs/promises';
import { finished, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import {
  ArchiveGuard,
  ArchiveTooLargeError,
  INFLATE_CHUNK_BYTES,
  inflatedBound,
  UnsafeEntryError,
  validateManifest,
  type ArchiveLimits,
  type BundleManifest,
  type FileIndexEntry,
} from '@kernex/shared';
import tar from 'tar-stream';
import { Errors } from '../errors.js';

/** Largest manifest.json we read, bytes. */
const MAX_MANIFEST_BYTES = 64 * 1024;

/** What an accepted upload holds. */
export interface InspectedBundle {
  sha256: string;
  size: number;
  manifest: BundleManifest;
  /** Every entry as it unpacks (DESIGN §4 file index), in archive order; hardlinks as the files they name. */
  entries: FileIndexEntry[];
}

/**
 * Streams an upload once: every byte is counted, hashed and written to
 * `tempFile` while the same bytes are gunzipped, bounded and walked entry by
 * entry through the shared archive rules (DESIGN §4). Nothing is held whole in
 * memory but manifest.json. Throws the contract's 400/413 errors naming what
 * is wrong, and only once every stage has stopped and the temp file is closed;
 * the caller removes `tempFile` on failure.
 *
 * One pipeline() carries every stage, so one error destroys them all and none
 * is left writing after the refusal (an error on a stream outside the pipeline
 * would be uncaught and end the process). The request alone stays outside it:
 * destroying the request would reset the socket before the 4xx is sent, so it
 * is piped in and watched with finished().
 */
export async function inspectBundleStream(
  body: Readable,
  opts: { tempFile: string; maxBytes: number; limits: Readonly<ArchiveLimits> },
): Promise<InspectedBundle> {
  const hash = createHash('sha256');
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > opts.maxBytes) return cb(new Errors.PAYLOAD_TOO_LARGE(opts.maxBytes));
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  const file = await fs.open(opts.tempFile, 'wx', 0o600);
  const toFile = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      // Pass the chunk on once the disk has it: backpressure from the disk.
      writeAll(file, chunk).then(
        () => cb(null, chunk),
        (err: unknown) => cb(err as Error),
      );
    },
  });

  const guard = new ArchiveGuard(opts.limits);
  const extract = tar.extract();
  let manifestText: string | undefined;
  const entries = new Map<string, FileIndexEntry>();
  const walk = async (): Promise<void> => {
    for await (const entry of extract) {
      const accepted = guard.check(entry.header);
      const mode = (entry.header.mode ?? 0o644) & 0o7777;
      if (accepted.kind === 'file') {
        const isManifest = accepted.path === 'manifest.json';
        if (isManifest && accepted.size > MAX_MANIFEST_BYTES) throw new Errors.BUNDLE_INVALID(`manifest.json is larger than ${MAX_MANIFEST_BYTES} bytes`);
        const fileHash = createHash('sha256');
        const chunks: Buffer[] = [];
        for await (const c of entry) {
          fileHash.update(c as Buffer);
          if (isManifest) chunks.push(c as Buffer);
        }
        if (isManifest) manifestText = Buffer.concat(chunks).toString('utf8');
        entries.set(accepted.path, { path: accepted.path, type: 'file', mode, size: accepted.size, sha256: fileHash.digest('hex') });
      } else {
        entry.resume();
        // 'close' too: an entry torn down with the archive ends neither way.
        await new Promise<void>((resolve, reject) => entry.once('end', resolve).once('close', resolve).once('error', reject));
        if (accepted.kind === 'directory') {
          if (accepted.path !== '.') entries.set(accepted.path, { path: accepted.path, type: 'directory', mode, size: 0 });
        } else if (accepted.kind === 'symlink') {
          const target = accepted.target!;
          entries.set(accepted.path, { path: accepted.path, type: 'symlink', mode, size: 0, target, sha256: createHash('sha256').update(target).digest('hex') });
        } else {
          // A hardlink unpacks as one more name of the file it names: the same content.
          const linked = entries.get(accepted.target!)!;
          entries.set(accepted.path, { ...linked, path: accepted.path });
        }
      }
    }
  };

  const piped = pipeline(meter, toFile, createGunzip({ chunkSize: INFLATE_CHUNK_BYTES }), inflatedBound(opts.limits), extract);
  const walked = walk().catch((err: unknown) => {
    extract.destroy(err as Error);
    throw err;
  });
  // An aborted or failing request stops the pipeline with its error.
  const stopWatching = finished(body, { writable: false }, (err) => {
    if (err) meter.destroy(err);
  });
  body.pipe(meter);
  const [walkResult, pipeResult] = await Promise.allSettled([walked, piped]);
  body.unpipe(meter);
  stopWatching();
  await file.close().catch(() => undefined);
  const failure = firstCause(walkResult, pipeResult);
  if (failure !== undefined) throw describe(failure);

  if (manifestText === undefined) throw new Errors.BUNDLE_INVALID('manifest.json missing at the bundle root');
  let manifest: unknown;
  try {
    manifest = JSON.parse(manifestText);
  } catch (err) {
    throw new Errors.BUNDLE_INVALID(`manifest.json is not valid JSON: ${(err as Error).message}`);
  }
  if (!validateManifest(manifest)) throw new Errors.BUNDLE_INVALID(`manifest.json ${validateManifest.lastError()}`);
  if (!guard.hasFile(normal(manifest.install))) {
    throw new Errors.BUNDLE_INVALID(`install script '${manifest.install}' is not a file of the bundle`);
  }
  if (manifest.healthCheck && !guard.hasFile(normal(manifest.healthCheck.script))) {
    throw new Errors.BUNDLE_INVALID(`health check script '${manifest.healthCheck.script}' is not a file of the bundle`);
  }
  // Parents the archive leaves implicit are made on unpacking (mode 0755): the index names them too.
  for (const p of [...entries.keys()]) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!entries.has(dir)) entries.set(dir, { path: dir, type: 'directory', mode: 0o755, size: 0 });
    }
  }
  return { sha256: hash.digest('hex'), size, manifest, entries: [...entries.values()] };
}

/** Writes the whole chunk (a write may take only part of it). */
async function writeAll(file: FileHandle, chunk: Buffer): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

/**
 * The error that stopped the upload: a stage torn down by another's error
 * reports a premature close, which is never the cause when a real error exists.
 */
function firstCause(...results: PromiseSettledResult<unknown>[]): unknown {
  const reasons = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  return reasons.find((r) => (r as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') ?? reasons[0];
}

const normal = (p: string): string => p.replace(/^(\.\/)+/, '').replace(/\/+/g, '/');

/** Turns stream failures into the contract's errors. */
function describe(err: unknown): Error {
  if (err instanceof UnsafeEntryError) return new Errors.BUNDLE_UNSAFE_ENTRY(err.entry, err.reason);
  if (err instanceof ArchiveTooLargeError) return new Errors.BUNDLE_INVALID(err.message);
  const e = err as NodeJS.ErrnoException & { statusCode?: number };
  if (e.statusCode) return e;
  if (e.code?.startsWith('Z_')) return new Errors.BUNDLE_INVALID(`not a gzip-compressed archive: ${e.message}`);
  if (e.code === 'ECONNRESET' || e.code === 'ERR_STREAM_PREMATURE_CLOSE') return new Errors.BUNDLE_INVALID('upload ended before the archive did');
  if (e.code === 'ENOSPC') return e;
  if (e instanceof Error && /tar|header|checksum|Unexpected end/i.test(e.message)) {
    return new Errors.BUNDLE_INVALID(`not a valid tar archive: ${e.message}`);
  }
  return e instanceof Error ? e : new Error(String(err));
}
