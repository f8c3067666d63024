import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../net/free-port.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

/** What a spawned `kernex server` of one test runs on: its own database, data directory, admin key and ports. */
export interface ServerEnv {
  database: TestDatabase;
  dataDir: string;
  adminKey: string;
  /** For `spawnServer`: DATABASE_URL, KERNEX_DATA_DIR, KERNEX_ADMIN_KEY, the two ports, no rate limit to speak of. */
  env: Record<string, string>;
  /** `{ authorization: 'Bearer <admin key>' }` for fetch. */
  headers: Record<string, string>;
  httpUrl: string;
  mqttUrl: string;
  /** Drops the database and removes the data directory (after the server has stopped). */
  remove(): Promise<void>;
}

export async function serverEnv(tag: string): Promise<ServerEnv> {
  const database = await createTestDatabase();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `kernex-${tag}-`));
  const adminKey = `kx_test_${randomBytes(16).toString('hex')}`;
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  return {
    database,
    dataDir,
    adminKey,
    env: {
      DATABASE_URL: database.url,
      KERNEX_DATA_DIR: dataDir,
      KERNEX_ADMIN_KEY: adminKey,
      KERNEX_HTTP_PORT: String(httpPort),
      KERNEX_MQTT_PORT: String(mqttPort),
      KERNEX_RATE_LIMIT_PER_MIN: '1000000',
    },
    headers: { authorization: `Bearer ${adminKey}` },
    httpUrl: `http://127.0.0.1:${httpPort}`,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    async remove() {
      await database.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}
