import fs from 'node:fs/promises';
import path from 'node:path';
import { StartupError } from './errors.js';

/**
 * Creates the data directory if needed and proves it is writable, so that a
 * bad `KERNEX_DATA_DIR` is one clear line at start rather than a failure later.
 * Mode 0711: secrets inside are 0600, and the embedded PostgreSQL (another
 * user when the server runs as root) must be able to traverse it.
 */
export async function prepareDataDir(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o711 });
    const probe = path.join(dir, `.write-test-${process.pid}`);
    await fs.writeFile(probe, '');
    await fs.rm(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new StartupError(`KERNEX_DATA_DIR ${dir} is not writable (${code})`, { cause: err });
  }
}

/**
 * When the server runs as root, the embedded PostgreSQL runs as user
 * 'postgres', which needs search permission on every directory above the data
 * directory. Checked up front: PostgreSQL's own error for this is obscure.
 */
export async function checkTraversableByOthers(dir: string, uid = process.getuid?.()): Promise<void> {
  if (uid !== 0) return;
  const resolved = path.resolve(dir);
  let current = resolved;
  for (;;) {
    const stat = await fs.stat(current);
    if ((stat.mode & 0o001) === 0) {
      const where = current === resolved ? `KERNEX_DATA_DIR ${dir}` : `KERNEX_DATA_DIR ${dir} is inside ${current}, which`;
      throw new StartupError(
        `${where} cannot be entered by the embedded PostgreSQL's 'postgres' user; ` +
          `run chmod 755 ${current}, or choose another data directory (e.g. /var/lib/kernex), or set DATABASE_URL`,
      );
    }
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

/** The data directory's lock, held for the life of the server. */
export interface DataDirLock {
  release(): Promise<void>;
}

const LOCK_FILE = 'kernex.lock';
/** Data directories this process holds (a lock file naming our own pid is only ours if listed here). */
const heldHere = new Set<string>();

/** A process's start time (clock ticks since boot, /proc/PID/stat field 22), so a reused pid is not taken for the holder. */
async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True when the lock file names a process that is alive and is the one that wrote it. */
async function holderAlive(holder: { pid?: unknown; started?: unknown }, dir: string): Promise<boolean> {
  const pid = holder.pid;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return heldHere.has(dir);
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const started = await processStartTime(pid);
  return started === undefined || holder.started === undefined || started === holder.started;
}

/**
 * Takes the data directory for this server (DESIGN §1: one running server per
 * data directory). A lock file names the holder's pid and start time; a second
 * server finds it alive and refuses with one line before it touches anything.
 * A lock left by a server that died (SIGKILL, power) names a process that is
 * gone, and is taken over.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  const file = path.join(dir, LOCK_FILE);
  const mine = JSON.stringify({ pid: process.pid, started: await processStartTime(process.pid) }) + '\n';
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.writeFile(file, mine, { flag: 'wx', mode: 0o644 });
      heldHere.add(dir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new StartupError(`KERNEX_DATA_DIR ${dir} is being taken by another kernex server at the same moment; try again`);
        }
        throw new StartupError(`KERNEX_DATA_DIR ${dir} cannot be locked (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
      }
    }
    let holder: { pid?: unknown; started?: unknown } = {};
    try {
      holder = JSON.parse(await fs.readFile(file, 'utf8')) as typeof holder;
    } catch {
      // unreadable or half-written: treated as stale below
    }
    if (await holderAlive(holder, dir)) {
      throw new StartupError(
        `KERNEX_DATA_DIR ${dir} is in use by another kernex server (pid ${String(holder.pid)}); stop it first, or give this one another KERNEX_DATA_DIR`,
      );
    }
    await fs.rm(file, { force: true });
  }
  return {
    async release() {
      heldHere.delete(dir);
      await fs.rm(file, { force: true });
    },
  };
}
