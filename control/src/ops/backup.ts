import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config.js';
import { S3BundleStorage } from '../storage/s3-bundle-storage.js';
import { SnapshotStore } from '../store/snapshot.pg.js';
import { BACKUP_FORMAT, BACKUP_VERSION, MANIFEST, packArchive, SIGNING_KEY_FILE, type BackupManifest, type PackEntry } from './backup-archive.js';
import { CliError } from '../cli/cli-error.js';
import { openOpsDatabase } from './ops-database.js';

/** How a backup or restore tells the operator where it is (the CLI draws a bar). */
export interface OpsProgress {
  phase(name: string, total: number): void;
  advance(n: number): void;
  done(): void;
}

export const NO_PROGRESS: OpsProgress = { phase() {}, advance() {}, done() {} };

/** What `kernex backup` wrote. */
export interface BackupResult {
  file: string;
  bytes: number;
  manifest: BackupManifest;
}

/** Key under `settings` that holds the server signing key (services/server-key.service.ts). */
export const SIGNING_KEY_SETTING = 'server_signing_key';

/**
 * `kernex backup --out FILE` (DESIGN §10): one archive with a consistent copy of the
 * database (every table read in one REPEATABLE READ snapshot while the server goes on),
 * the signing key, the blobs of exactly the bundle rows in that snapshot (file store; with
 * S3 their keys and sizes, the bucket being the user's to back up), and the data directory's TLS CA. Written to `FILE.part` and renamed, mode 0600: it holds secrets.
 */
export async function runBackup(config: Readonly<ServerConfig>, out: string, log: Logger, progress: OpsProgress = NO_PROGRESS): Promise<BackupResult> {
  const file = path.resolve(out);
  const work = await fs.mkdtemp(path.join(path.dirname(file), '.kernex-backup-'));
  try {
    const db = await openOpsDatabase(config, log);
    let manifest: BackupManifest;
    try {
      manifest = await new SnapshotStore(db.sql).read(async (snap) => {
        const tables = await snap.tables();
        progress.phase('database', tables.length);
        await fs.mkdir(path.join(work, 'database'));
        const dumped: BackupManifest['database']['tables'] = [];
        for (const t of tables) {
          await pipeline(await snap.copyOut(t), createWriteStream(path.join(work, 'database', `${t.name}.copy`), { mode: 0o600 }));
          dumped.push({ ...t, rows: await snap.rowCount(t.name) });
          progress.advance(1);
        }
        const key = await snap.setting<{ privateKeyPem: string }>(SIGNING_KEY_SETTING);
        if (key) await fs.writeFile(path.join(work, SIGNING_KEY_FILE), key.privateKeyPem, { mode: 0o600 });
        return {
          format: BACKUP_FORMAT,
          version: BACKUP_VERSION,
          createdAt: new Date().toISOString(),
          database: {
            kind: config.databaseUrl ? 'external' : 'embedded',
            serverVersion: await snap.serverVersion(),
            migrations: (await snap.migrations()).map((m) => ({ id: m.id, name: m.name })),
            tables: dumped,
            sequences: await snap.sequences(),
          },
          signingKey: key ? SIGNING_KEY_FILE : '',
          bundles: {
            store: config.bundleStore.kind,
            ...(config.bundleStore.kind === 's3' ? { bucket: config.bundleStore.bucket } : {}),
            blobs: (await snap.bundles()).map((b) => ({ key: b.id, name: b.name, version: b.version, size: 0 })),
            missing: [],
          },
          dataFiles: [],
        } satisfies BackupManifest;
      });
    } finally {
      await db.close();
    }

    // Blobs of exactly the rows in the snapshot: a bundle uploaded later is not in the dump either.
    const entries: PackEntry[] = [];
    const store = config.bundleStore;
    // Read-only: opening LocalBundleStorage would clear a running server's in-flight uploads.
    const s3 =
      store.kind === 's3'
        ? await S3BundleStorage.open({ ...store, stagingDir: path.join(work, 's3-staging') }).catch((err: unknown) => {
            throw new CliError(`cannot list the bundle blobs in bucket ${store.bucket}: ${(err as Error).message}`);
          })
        : undefined;
    const blobSize = async (key: string): Promise<number | undefined> =>
      store.kind === 'file' ? (await fs.stat(path.join(store.dir, `${key}.tar.gz`)).catch(() => undefined))?.size : (await s3!.stat(key))?.size;
    const kept: BackupManifest['bundles']['blobs'] = [];
    for (const b of manifest.bundles.blobs) {
      const size = await blobSize(b.key);
      if (size === undefined) {
        manifest.bundles.missing.push(b.key);
        log.warn({ bundleId: b.key }, 'bundle blob missing; the row is kept without it');
        continue;
      }
      kept.push({ ...b, size });
      if (store.kind === 'file') entries.push({ name: `bundles/${b.key}.tar.gz`, file: path.join(store.dir, `${b.key}.tar.gz`) });
    }
    s3?.close();
    manifest.bundles.blobs = kept;

    const tlsDir = path.join(config.dataDir, 'tls');
    for (const name of (await fs.readdir(tlsDir).catch(() => [] as string[])).sort()) {
      const stat = await fs.stat(path.join(tlsDir, name));
      if (!stat.isFile()) continue;
      manifest.dataFiles.push(`tls/${name}`);
      entries.push({ name: `data/tls/${name}`, file: path.join(tlsDir, name), mode: stat.mode & 0o777 });
    }
    entries.unshift(
      { name: MANIFEST, bytes: Buffer.from(JSON.stringify(manifest, null, 2) + '\n') },
      ...(manifest.signingKey ? [{ name: SIGNING_KEY_FILE, file: path.join(work, SIGNING_KEY_FILE) }] : []),
      ...manifest.database.tables.map((t) => ({ name: `database/${t.name}.copy`, file: path.join(work, 'database', `${t.name}.copy`) })),
    );

    let total = 0;
    for (const e of entries) total += e.bytes?.length ?? (await fs.stat(e.file!)).size;
    progress.phase('archive', total);
    await packArchive(file, entries, (n) => progress.advance(n));
    progress.done();
    const { size } = await fs.stat(file);
    log.info({ file, bytes: size, tables: manifest.database.tables.length, bundles: kept.length, missing: manifest.bundles.missing.length }, 'backup written');
    return { file, bytes: size, manifest };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
