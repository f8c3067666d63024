import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { loadConfig } from '../config.js';
import { startS3, type TestS3 } from '../test-support/s3-server.js';
import { openBundleStorage } from './open-bundle-storage.js';
import type { BundleStorage } from './bundle-storage.js';
import { bundleStorageContract } from './test-support/bundle-storage.contract.js';

// The contract suite against a real S3-compatible server (s3rver) on loopback,
// configured as an operator would (KERNEX_BUNDLE_STORE=s3 and the AWS_* variables).
let s3: TestS3;
const opened: BundleStorage[] = [];
const dirs: string[] = [];
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  for (const s of opened) s.close?.();
  await s3?.close();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

bundleStorageContract(
  's3 (s3rver)',
  async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-s3-staging-'));
    dirs.push(dataDir);
    const storage = await openBundleStorage(loadConfig({ ...s3.env, KERNEX_DATA_DIR: dataDir }));
    opened.push(storage);
    return storage;
  },
  (key) => s3.objectBytes(`bundles/${key}.tar.gz`),
);
