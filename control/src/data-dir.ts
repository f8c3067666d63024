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
export async function checkTraversableByOthers(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  let current = path.resolve(dir);
  for (;;) {
    const stat = await fs.stat(current);
    if ((stat.mode & 0o001) === 0) {
      throw new StartupError(
        `KERNEX_DATA_DIR ${dir} is inside ${current}, which the embedded PostgreSQL's 'postgres' user cannot enter; ` +
          'choose a data directory outside it (e.g. /var/lib/kernex) or set DATABASE_URL',
      );
    }
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}
