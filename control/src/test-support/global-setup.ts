import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../store/embedded-postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL of the PostgreSQL the integration tests make their databases on. */
    pgAdminUrl: string;
  }
}

/**
 * One embedded PostgreSQL for the whole integration run; every test file makes
 * its own database on it (see test-database.ts), so files stay independent.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-test-pg-'));
  await fs.chmod(dir, 0o711);
  const db = await startEmbeddedPostgres(dir, 0, pino({ level: 'warn' }));
  const url = new URL(db.url);
  url.pathname = '/postgres';
  project.provide('pgAdminUrl', url.toString());
  return async () => {
    await db.stop();
    await fs.rm(dir, { recursive: true, force: true });
  };
}
