import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { bundleStorageContract } from './test-support/bundle-storage.contract.js';
import { LocalBundleStorage } from './local-bundle-storage.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

let dir = '';
bundleStorageContract(
  'local directory',
  async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-bundles-'));
    dirs.push(dir);
    return LocalBundleStorage.open(dir);
  },
  (key) => fs.readFile(path.join(dir, `${key}.tar.gz`)),
);
