import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ArchiveGuard, UnsafeEntryError, validateManifest, type ArchiveLimits, type BundleManifest } from '@kernex/shared';
import tar from 'tar-stream';
import { Errors } from '../errors.js';

/** Largest manifest.json we read, bytes. */
const MAX_MANIFEST_BYTES = 64 * 1024;

/** What an accepted upload holds. */
export interface InspectedBundle {
  sha256: string;
  size: number;
  manifest: BundleManifest;
}

/**
 * Streams an upload once: every byte is hashed, counted and written to
 * `tempFile` while the same bytes are gunzipped and walked entry by entry
 * through the shared archive rules (DESIGN §4). Nothing is held whole in
 * memory but manifest.json. Throws the contract's 400/413 errors naming what
 * is wrong; the caller removes `tempFile` on failure.
 */
export async function inspectBundleStream(
  body: Readable,
  opts: { tempFile: string; maxBytes: number; limits: Readonly<ArchiveLimits> },
): Promise<InspectedBundle> {
  const hash = createHash('sha256');
  const file = createWriteStream(opts.tempFile, { flags: 'wx', mode: 0o600 });
  let size = 0;
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > opts.maxBytes) return cb(new Errors.PAYLOAD_TOO_LARGE(opts.maxBytes));
      hash.update(chunk);
      // Wait for the file to take the chunk: backpressure from the disk.
      file.write(chunk, (err) => cb(err ?? null, chunk));
    },
    flush(cb) {
      file.end(cb);
    },
  });

  const guard = new ArchiveGuard(opts.limits);
  const extract = tar.extract();
  let manifestText: string | undefined;
  const walk = async (): Promise<void> => {
    for await (const entry of extract) {
      const accepted = guard.check(entry.header);
      if (accepted.path === 'manifest.json' && accepted.kind === 'file') {
        if (accepted.size > MAX_MANIFEST_BYTES) throw new Errors.BUNDLE_INVALID(`manifest.json is larger than ${MAX_MANIFEST_BYTES} bytes`);
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        manifestText = Buffer.concat(chunks).toString('utf8');
      } else {
        entry.resume();
        await new Promise<void>((resolve, reject) => entry.once('end', resolve).once('error', reject));
      }
    }
  };

  // The request is piped, not put in the pipeline: a refused archive must not
  // destroy the request socket, so the route can drain it and answer 400.
  body.on('error', (err) => tee.destroy(err));
  body.pipe(tee);
  try {
    await Promise.all([pipeline(tee, createGunzip(), extract), walk()]);
  } catch (err) {
    body.unpipe(tee);
    file.destroy();
    throw describe(err);
  }

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
  return { sha256: hash.digest('hex'), size, manifest };
}

const normal = (p: string): string => p.replace(/^(\.\/)+/, '').replace(/\/+/g, '/');

/** Turns stream failures into the contract's errors. */
function describe(err: unknown): Error {
  if (err instanceof UnsafeEntryError) return new Errors.BUNDLE_UNSAFE_ENTRY(err.entry, err.reason);
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
