import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { CliError } from '../cli/cli-error.js';
import type { ServerConfig } from '../config.js';
import { checkTraversableByOthers, prepareDataDir } from '../data-dir.js';
import { listMigrations, migrate } from '../store/migrate.js';
import { SnapshotStore } from '../store/snapshot.pg.js';
import { BACKUP_FORMAT, BACKUP_VERSION, MANIFEST, SIGNING_KEY_FILE, unpackArchive, type BackupManifest } from './backup-archive.js';
import { NO_PROGRESS, SIGNING_KEY_SETTING, type OpsProgress } from './backup.js';
import { openOpsDatabase } from './ops-database.js';

/** Entries of `dir`, or none when it does not exist. */
async function entries(dir: string): Promise<string[]> {
  return fs.readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
}

async function readManifest(dir: string): Promise<BackupManifest> {
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(await fs.readFile(path.join(dir, MANIFEST), 'utf8')) as BackupManifest;
  } catch {
    throw new CliError(`not a Kernex backup: no readable ${MANIFEST}`);
  }
  if (manifest.format !== BACKUP_FORMAT) throw new CliError(`not a Kernex backup: format '${String(manifest.format)}'`);
  if (manifest.version !== BACKUP_VERSION) throw new CliError(`backup format version ${manifest.version} is not supported by this kernex (it reads ${BACKUP_VERSION})`);
  return manifest;
}

/**
 * `kernex restore FILE` (DESIGN §10): rebuilds an installation from a backup into an empty
 * data directory and an empty database (the embedded one it creates, or `DATABASE_URL`),
 * and refuses a non-empty one. It applies the backup's own migrations, loads every table
 * in one transaction, puts sequences back, then the blobs and the TLS CA; the next
 * `kernex server` applies any newer migrations. On failure it removes what it created.
 */
export async function runRestore(config: Readonly<ServerConfig>, archive: string, log: Logger, progress: OpsProgress = NO_PROGRESS): Promise<BackupManifest> {
  const file = path.resolve(archive);
  await fs.access(file).catch(() => {
    throw new CliError(`cannot read ${file}`);
  });
  const existing = await entries(config.dataDir);
  if (existing.length > 0) {
    throw new CliError(`KERNEX_DATA_DIR ${config.dataDir} is not empty (${existing.length} entries): restore needs an empty data directory`);
  }

  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-restore-'));
  let created = false;
  try {
    try {
      await unpackArchive(file, work);
    } catch (err) {
      throw new CliError(err instanceof CliError ? err.message : `cannot unpack ${file}: ${(err as Error).message}`);
    }
    const manifest = await readManifest(work);
    const store = config.bundleStore;
    if ((manifest.bundles.store ?? 'file') !== store.kind) {
      throw new CliError(
        `the backup's bundles are in the ${manifest.bundles.store} store but KERNEX_BUNDLE_STORE is ${store.kind}: restore with KERNEX_BUNDLE_STORE=${manifest.bundles.store}` +
          (manifest.bundles.store === 's3' ? ` and the bucket ${manifest.bundles.bucket ?? ''} restored` : ''),
      );
    }
    if (store.kind === 'file' && !store.dir.startsWith(config.dataDir + path.sep) && (await entries(store.dir)).length > 0) {
      throw new CliError(`KERNEX_BUNDLE_DIR ${store.dir} is not empty: restore needs an empty bundle directory`);
    }
    const known = await listMigrations();
    for (const m of manifest.database.migrations) {
      const here = known.find((k) => k.id === m.id);
      if (!here || here.name !== m.name) {
        throw new CliError(`the backup was made by a newer or different Kernex: migration ${String(m.id).padStart(3, '0')}_${m.name} is unknown here`);
      }
    }

    await prepareDataDir(config.dataDir);
    created = true;
    if (!config.databaseUrl) await checkTraversableByOthers(config.dataDir);
    const db = await openOpsDatabase(config, log);
    try {
      const store = new SnapshotStore(db.sql);
      const state = await store.isEmpty();
      if (!state.empty) {
        created = false; // the database was not ours to clear; the data directory is cleaned below
        await fs.rm(config.dataDir, { recursive: true, force: true });
        throw new CliError(`the database (${db.where}) is not empty (${state.relations} tables or sequences in schema ${state.schema}): restore needs an empty database`);
      }
      // Exactly the backup's migrations, so its rows fit the tables they came from.
      const subset = path.join(work, 'migrations');
      await fs.mkdir(subset);
      for (const m of known.filter((k) => manifest.database.migrations.some((b) => b.id === k.id))) {
        await fs.copyFile(m.file, path.join(subset, path.basename(m.file)));
      }
      await migrate(db.sql, log.child({ mod: 'migrate' }), subset);

      progress.phase('database', manifest.database.tables.reduce((n, t) => n + t.rows, 0));
      await store.write(async (target) => {
        for (const t of manifest.database.tables) {
          await pipeline(createReadStream(path.join(work, 'database', `${t.name}.copy`)), await target.copyIn(t));
          progress.advance(t.rows);
        }
        for (const s of manifest.database.sequences) await target.setSequence(s);
        if (manifest.signingKey) {
          const pem = await fs.readFile(path.join(work, SIGNING_KEY_FILE), 'utf8');
          const stored = await target.setting<{ privateKeyPem: string }>(SIGNING_KEY_SETTING);
          if (stored?.privateKeyPem !== pem) throw new CliError('the backup is inconsistent: its signing key differs from the one in its database');
        }
      });
    } finally {
      await db.close();
    }

    if (store.kind === 'file') {
      progress.phase('files', manifest.bundles.blobs.reduce((n, b) => n + b.size, 0));
      await fs.mkdir(store.dir, { recursive: true, mode: 0o700 });
      for (const b of manifest.bundles.blobs) {
        await fs.copyFile(path.join(work, 'bundles', `${b.key}.tar.gz`), path.join(store.dir, `${b.key}.tar.gz`));
        progress.advance(b.size);
      }
    }
    for (const f of manifest.dataFiles) {
      const target = path.join(config.dataDir, f);
      await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
      await fs.copyFile(path.join(work, 'data', f), target);
      await fs.chmod(target, f.endsWith('.key') ? 0o600 : 0o644);
    }
    progress.done();
    log.info({ dataDir: config.dataDir, tables: manifest.database.tables.length, bundles: manifest.bundles.blobs.length }, 'restore done');
    return manifest;
  } catch (err) {
    if (created) await fs.rm(config.dataDir, { recursive: true, force: true }).catch(() => {});
    throw err;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
