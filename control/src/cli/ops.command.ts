import { Command } from 'commander';
import pino, { type Logger } from 'pino';
import { ConfigError, loadConfig, type ServerConfig } from '../config.js';
import { StartupError } from '../errors.js';
import { runBackup, type OpsProgress } from '../ops/backup.js';
import { runRestore } from '../ops/restore.js';
import { migrate } from '../store/migrate.js';
import { openOpsDatabase } from '../ops/ops-database.js';
import { explainMigrationPrivilege } from '../store/privileges.js';
import { CliError } from './cli-error.js';
import { progressBar } from './progress.js';

/** A progress bar per phase (database, archive, files), on stderr when it is a terminal. */
function barProgress(verb: string): OpsProgress {
  let bar: ReturnType<typeof progressBar> | undefined;
  let value = 0;
  return {
    phase(name, total) {
      bar?.stop();
      value = 0;
      bar = progressBar(`${verb} {phase} [{bar}] {percentage}% | {value}/{total}`, total, { phase: name.padEnd(8) });
    },
    advance(n) {
      value += n;
      bar?.update(value);
    },
    done() {
      bar?.stop();
      bar = undefined;
    },
  };
}

/**
 * Runs an operations command with the server's own settings (DESIGN §10): warnings and
 * errors of the parts it uses go to stderr as JSON lines; any failure is one line, exit 1.
 */
function opsAction<A extends unknown[]>(name: string, run: (config: Readonly<ServerConfig>, log: Logger, ...args: A) => Promise<void>) {
  return async (...args: unknown[]): Promise<void> => {
    let config: Readonly<ServerConfig>;
    try {
      config = loadConfig();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const p of err.problems) process.stderr.write(`kernex ${name}: ${p}\n`);
      process.exitCode = 1;
      return;
    }
    // Only warnings and worse by default: stdout carries the command's own result.
    const level = ['debug', 'trace', 'silent', 'error', 'fatal'].includes(config.logLevel) ? config.logLevel : 'warn';
    const log = pino({ name: `kernex-${name}`, level }, pino.destination({ dest: 2, sync: true }));
    try {
      await run(config, log, ...(args.slice(0, -1) as A));
    } catch (err) {
      if (err instanceof CliError || err instanceof StartupError) {
        process.stderr.write(`kernex ${name}: ${err.message}\n`);
        process.exitCode = 1;
        return;
      }
      throw err;
    }
  };
}

/** `kernex backup --out FILE`. */
export function backupCommand(): Command {
  return new Command('backup')
    .description('write a consistent backup (database, signing key, bundle blobs, TLS CA) while the server runs; uses KERNEX_DATA_DIR and DATABASE_URL')
    .requiredOption('--out <file>', 'archive to write (gzip\'d tar, mode 0600: it holds the signing key)')
    .action(
      opsAction('backup', async (config, log, opts: { out: string }) => {
        const { file, bytes, manifest } = await runBackup(config, opts.out, log, barProgress('backup'));
        const rows = manifest.database.tables.reduce((n, t) => n + t.rows, 0);
        process.stdout.write(`backup written: ${file} (${bytes} bytes; ${manifest.database.tables.length} tables, ${rows} rows, ${manifest.bundles.blobs.length} bundle blobs)\n`);
        if (manifest.bundles.missing.length > 0) {
          process.stderr.write(`kernex backup: ${manifest.bundles.missing.length} bundle rows had no blob: ${manifest.bundles.missing.join(', ')}\n`);
        }
      }),
    );
}

/** `kernex restore FILE`. */
export function restoreCommand(): Command {
  return new Command('restore')
    .description('rebuild an installation from a backup into an empty KERNEX_DATA_DIR and an empty database (embedded, or DATABASE_URL)')
    .argument('<file>', 'a file written by kernex backup')
    .action(
      opsAction('restore', async (config, log, file: string) => {
        const manifest = await runRestore(config, file, log, barProgress('restore'));
        process.stdout.write(`restored ${file} into ${config.dataDir} (${manifest.database.tables.length} tables, ${manifest.bundles.blobs.length} bundle blobs); start kernex server\n`);
      }),
    );
}

/** `kernex migrate`: applies the migrations with the DATABASE_URL given (an owner's). */
export function migrateCommand(): Command {
  return new Command('migrate')
    .description("apply pending database migrations and exit (run with the owner's DATABASE_URL, so the server may run with data privileges only)")
    .action(
      opsAction('migrate', async (config, log) => {
        const db = await openOpsDatabase(config, log);
        try {
          const applied = await migrate(db.sql, log).catch(async (err: unknown) => {
            const line = await explainMigrationPrivilege(db.sql, err);
            throw line ? new CliError(line) : err;
          });
          process.stdout.write(applied.length ? `applied ${applied.length} migrations (${applied.map((id) => String(id).padStart(3, '0')).join(', ')})\n` : 'no pending migrations\n');
        } finally {
          await db.close();
        }
      }),
    );
}
