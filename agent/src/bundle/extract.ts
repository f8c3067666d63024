import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ArchiveGuard, DEFAULT_ARCHIVE_LIMITS, INFLATE_CHUNK_BYTES, inflatedBound, validateManifest, type ArchiveLimits, type BundleManifest } from '@kernex/shared';
import tar from 'tar-stream';
import { BundleInvalidError } from '../errors.js';

/** How files are written; injectable so tests can make the disk fail (ENOSPC). */
export type OpenWrite = (file: string, mode: number) => Writable;

const defaultOpenWrite: OpenWrite = (file, mode) => createWriteStream(file, { flags: 'wx', mode });

export interface ExtractOptions {
  limits?: ArchiveLimits;
  openWrite?: OpenWrite;
}

/**
 * Unpacks `archive` into the empty directory `dest` under the shared safe-tar
 * rules (a hostile entry throws UnsafeEntryError and nothing is run). Modes are
 * kept but for set-id and group/other write bits. Returns the manifest.
 */
export async function extractBundle(archive: string, dest: string, opts: ExtractOptions = {}): Promise<BundleManifest> {
  const limits = opts.limits ?? DEFAULT_ARCHIVE_LIMITS;
  const guard = new ArchiveGuard(limits);
  const openWrite = opts.openWrite ?? defaultOpenWrite;
  await fs.mkdir(dest, { recursive: true, mode: 0o755 });
  const extract = tar.extract();
  const walk = async (): Promise<void> => {
    for await (const entry of extract) {
      const e = guard.check(entry.header);
      const target = path.join(dest, e.path);
      const mode = (entry.header.mode ?? 0o644) & 0o755;
      switch (e.kind) {
        case 'directory':
          entry.resume();
          await fs.mkdir(target, { recursive: true, mode: mode | 0o700 });
          break;
        case 'file':
          await fs.mkdir(path.dirname(target), { recursive: true });
          await pipeline(entry, openWrite(target, mode | 0o600));
          break;
        case 'symlink':
          entry.resume();
          await fs.mkdir(path.dirname(target), { recursive: true });
          await fs.symlink(e.target!, target);
          break;
        case 'hardlink':
          entry.resume();
          await fs.mkdir(path.dirname(target), { recursive: true });
          await fs.link(path.join(dest, e.target!), target);
          break;
      }
    }
  };
  // Every inflated byte counts toward the unpacked bound, padding after the
  // tar end marker included. A refused entry destroys the archive's streams,
  // and both sides are awaited so no write is still running when this throws.
  const piped = pipeline(createReadStream(archive), createGunzip({ chunkSize: INFLATE_CHUNK_BYTES }), inflatedBound(limits), extract);
  const walked = walk().catch((err: unknown) => {
    extract.destroy(err as Error);
    throw err;
  });
  const failure = firstCause(await Promise.allSettled([walked, piped]));
  if (failure !== undefined) throw failure;

  let manifest: unknown;
  try {
    manifest = JSON.parse(await fs.readFile(path.join(dest, 'manifest.json'), 'utf8'));
  } catch (err) {
    throw new BundleInvalidError(`manifest.json unreadable: ${(err as Error).message}`, { cause: err });
  }
  if (!validateManifest(manifest)) throw new BundleInvalidError(`manifest.json ${validateManifest.lastError()}`);
  return manifest;
}

/**
 * The error that stopped the extraction: a stage torn down by another's error
 * reports a premature close, which is never the cause when a real error exists.
 */
function firstCause(results: PromiseSettledResult<unknown>[]): unknown {
  const reasons = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  return reasons.find((r) => (r as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') ?? reasons[0];
}
