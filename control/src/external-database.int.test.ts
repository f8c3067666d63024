import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnServer } from './test-support/spawn-server.js';

// Runs when DATABASE_URL names an external PostgreSQL (.ci/run starts Debian's and sets it).
describe.runIf(process.env.DATABASE_URL)('kernex server with DATABASE_URL', () => {
  it('uses the external PostgreSQL and starts no embedded one', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-ext-'));
    try {
      const server = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', DATABASE_URL: process.env.DATABASE_URL! });
      const { httpPort } = await server.ready;
      expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(200);
      // The ready line's own field says which database it uses; no embedded cluster was made.
      expect(await server.ready).toMatchObject({ embeddedDatabase: false });
      await expect(fs.access(path.join(dataDir, 'pg'))).rejects.toThrow();
      server.proc.kill('SIGTERM');
      expect((await server.exited).code).toBe(0);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
