import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkTraversableByOthers } from './data-dir.js';
import { StartupError } from './errors.js';

describe('checkTraversableByOthers (a root server, whose embedded PostgreSQL runs as postgres)', () => {
  let parent: string;
  beforeEach(async () => {
    parent = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-dd-'));
    await fs.chmod(parent, 0o711);
  });
  afterEach(async () => {
    await fs.rm(parent, { recursive: true, force: true });
  });

  it('names the data directory itself, and how to fix it, when the data directory cannot be entered', async () => {
    const dir = path.join(parent, 'data');
    await fs.mkdir(dir, { mode: 0o700 });
    await fs.chmod(dir, 0o700);
    await expect(checkTraversableByOthers(dir, 0)).rejects.toThrow(
      new StartupError(
        `KERNEX_DATA_DIR ${dir} cannot be entered by the embedded PostgreSQL's 'postgres' user; ` +
          `run chmod 755 ${dir}, or choose another data directory (e.g. /var/lib/kernex), or set DATABASE_URL`,
      ),
    );
  });

  it('names the directory above it that cannot be entered', async () => {
    const closed = path.join(parent, 'home');
    const dir = path.join(closed, 'data');
    await fs.mkdir(dir, { recursive: true, mode: 0o711 });
    await fs.chmod(closed, 0o700);
    await expect(checkTraversableByOthers(dir, 0)).rejects.toThrow(
      new StartupError(
        `KERNEX_DATA_DIR ${dir} is inside ${closed}, which cannot be entered by the embedded PostgreSQL's 'postgres' user; ` +
          `run chmod 755 ${closed}, or choose another data directory (e.g. /var/lib/kernex), or set DATABASE_URL`,
      ),
    );
  });

  it('passes a data directory every user can enter', async () => {
    const dir = path.join(parent, 'data');
    await fs.mkdir(dir, { mode: 0o711 });
    await fs.chmod(dir, 0o711);
    await expect(checkTraversableByOthers(dir, 0)).resolves.toBeUndefined();
  });
});
