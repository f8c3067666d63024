import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateDeviceKey } from '@kernex/shared';
import pino from 'pino';
import { loadConfig } from '../config.js';
import { startServer, type RunningServer } from '../server.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

let signingKey: Promise<string> | undefined;
/** One RSA-4096 signing key per test worker: making one per server would cost seconds each. */
function testSigningKey(): Promise<string> {
  signingKey ??= generateDeviceKey('rsa').then((k) => k.privateKeyPem);
  return signingKey;
}

/** An in-process server on loopback, its own database and data directory. */
export interface TestServer extends RunningServer {
  database: TestDatabase;
  /** The bootstrap admin key (KERNEX_ADMIN_KEY) of this server. */
  adminKey: string;
  /** `{ authorization: 'Bearer <admin key>' }` for fetch. */
  adminHeaders: Record<string, string>;
  /** Closes the server, drops its database, removes its data directory. */
  stop(): Promise<void>;
}

/**
 * Starts a real server (real PostgreSQL, real Aedes, real HTTP) on port 0.
 * `env` adds or overrides `KERNEX_*` variables. With `ownSigningKey` the server
 * makes its own RSA-4096 key on first start, as in production (seconds of CPU).
 */
export async function startTestServer(env: Record<string, string> = {}, opts: { ownSigningKey?: boolean } = {}): Promise<TestServer> {
  const database = await createTestDatabase();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-test-data-'));
  const adminKey = `kx_test_${randomBytes(16).toString('hex')}`;
  const config = loadConfig({
    KERNEX_ADMIN_KEY: adminKey,
    // Tests register many devices from one address; tests of the limits set their own.
    KERNEX_RATE_LIMIT_PER_MIN: '1000000',
    KERNEX_REGISTER_RATE_LIMIT_PER_MIN: '1000000',
    DATABASE_URL: database.url,
    KERNEX_DATA_DIR: dataDir,
    KERNEX_HOST: '127.0.0.1',
    KERNEX_HTTP_PORT: '0',
    KERNEX_MQTT_PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  const server = await startServer(config, pino({ level: config.logLevel }), opts.ownSigningKey ? {} : { signingKeyPem: await testSigningKey() });
  return Object.assign(server, {
    database,
    adminKey: config.adminKey!,
    adminHeaders: { authorization: `Bearer ${config.adminKey}` },
    async stop() {
      await server.close();
      await database.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  });
}
