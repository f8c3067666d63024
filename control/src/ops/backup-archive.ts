import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import tar from 'tar-stream';
import type { SequenceState, TableShape } from '../store/snapshot.pg.js';

/** Names the archive's first entry; a restore refuses anything else. */
export const BACKUP_FORMAT = 'kernex-backup';
export const BACKUP_VERSION = 1;
export const MANIFEST = 'manifest.json';
export const SIGNING_KEY_FILE = 'signing-key.pem';

/** What a backup holds (the archive's `manifest.json`). */
export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  version: number;
  createdAt: string;
  database: {
    /** `embedded` or `external` (DATABASE_URL). */
    kind: 'embedded' | 'external';
    serverVersion: string;
    /** Applied migrations; a restore applies exactly these before loading the rows. */
    migrations: Array<{ id: number; name: string }>;
    /** In load order, each a `database/<name>.copy` entry in COPY text format. */
    tables: Array<TableShape & { rows: number }>;
    sequences: SequenceState[];
  };
  /** The server signing key is also in `settings`; kept here as PEM so it is visibly part of the backup. */
  signingKey: string;
  bundles: {
    /**
     * `file`: every blob is in the archive as `bundles/<key>.tar.gz`. `s3`: the blobs stay in the
     * bucket (the user's own to back up); `blobs` records each row's key and size as found there.
     */
    store: 'file' | 's3';
    /** The bucket, for `s3`. */
    bucket?: string;
    /** Every bundle row of the snapshot whose blob was found (key = bundle id). */
    blobs: Array<{ key: string; name: string; version: string; size: number }>;
    /** Rows whose blob was gone when the backup read it (deleted after the snapshot, or lost). */
    missing: string[];
  };
  /** Other files of the data directory (the self-made TLS CA devices pin), under `data/`. */
  dataFiles: string[];
}

/** One entry to pack: its archive name and either a file on disk or bytes. */
export interface PackEntry {
  name: string;
  file?: string;
  bytes?: Buffer;
  mode?: number;
}

/** Writes a gzip'd tar of `entries` to `out` (via `out.part`, then a rename), reporting bytes as they go. */
export async function packArchive(out: string, entries: PackEntry[], onBytes: (n: number) => void): Promise<void> {
  const part = `${out}.part`;
  const pack = tar.pack();
  const writing = pipeline(pack, createGzip(), createWriteStream(part, { mode: 0o600 }));
  try {
    for (const e of entries) {
      if (e.bytes) {
        await new Promise<void>((resolve, reject) => pack.entry({ name: e.name, mode: e.mode ?? 0o600 }, e.bytes!, (err) => (err ? reject(err) : resolve())));
        onBytes(e.bytes.length);
        continue;
      }
      const { size } = await fs.stat(e.file!);
      const sink = pack.entry({ name: e.name, size, mode: e.mode ?? 0o600 });
      const count = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          onBytes(chunk.length);
          cb(null, chunk);
        },
      });
      await pipeline(createReadStream(e.file!), count, sink);
    }
    pack.finalize();
    await writing;
    await fs.rename(part, out);
  } catch (err) {
    pack.destroy(err as Error);
    await writing.catch(() => {});
    await fs.rm(part, { force: true });
    throw err;
  }
}

/** Archive names a backup may hold: nothing absolute, no `..`, only its own folders. */
const SAFE_NAME = /^(manifest\.json|signing-key\.pem|database\/[a-z0-9_]+\.copy|bundles\/[A-Za-z0-9._-]+\.tar\.gz|data\/tls\/[A-Za-z0-9._-]+)$/;

/** Unpacks a backup into `dir`, refusing any entry that is not one of a backup's own. */
export async function unpackArchive(file: string, dir: string): Promise<void> {
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    // The archive's own error (bad gzip, a cut file, a refused entry) surfaces once, from the
    // pipeline below; the entry stream repeats it when the extractor is destroyed under it.
    stream.on('error', () => {});
    if (header.type !== 'file' || !SAFE_NAME.test(header.name) || header.name.includes('..')) {
      stream.resume();
      extract.destroy(new Error(`not a Kernex backup: unexpected entry '${header.name}'`));
      return;
    }
    const target = path.join(dir, header.name);
    fs.mkdir(path.dirname(target), { recursive: true })
      .then(() => pipeline(stream, createWriteStream(target, { mode: 0o600 })))
      .then(() => next(), (err: Error) => extract.destroy(err));
  });
  await pipeline(createReadStream(file), createGunzip(), extract);
}
