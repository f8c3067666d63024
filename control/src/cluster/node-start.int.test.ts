import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../net/free-port.js';
import { adminHeaders, CLUSTER_ADMIN_KEY } from '../test-support/cluster.js';
import { api } from '../test-support/devices.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { spawnServer } from '../test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';
import { startTestServer } from '../test-support/test-server.js';

/** How a node starts, or refuses to (DESIGN §8, and a single node unchanged). */
describe('starting a node', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  const dirs: string[] = [];
  const dataDir = async (): Promise<string> => {
    const d = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-nodestart-'));
    dirs.push(d);
    return d;
  };
  const env = async (extra: Record<string, string>): Promise<Record<string, string>> => ({
    KERNEX_DATA_DIR: await dataDir(),
    KERNEX_HTTP_PORT: '0',
    KERNEX_MQTT_PORT: '0',
    DATABASE_URL: db.url,
    KERNEX_ADMIN_KEY: CLUSTER_ADMIN_KEY,
    ...extra,
  });

  beforeAll(async () => {
    [db, redis] = await Promise.all([createTestDatabase(), startRedis()]);
  });
  afterAll(async () => {
    await redis?.stop();
    await db?.drop();
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  it('refuses to start, with one line and exit 1, when Redis does not answer', async () => {
    const port = await freePort();
    const server = spawnServer(await env({ KERNEX_REDIS_URL: `redis://127.0.0.1:${port}` }));
    const { code } = await server.exited;
    expect(code).toBe(1);
    const lines = server.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`127.0.0.1:${port}`);
    expect(lines[0]).toContain('KERNEX_REDIS_URL');
    expect(lines[0]).not.toContain('unexpected error');
  });

  it('refuses a second live node with the same KERNEX_NODE_ID, and lets it start once the first has stopped', async () => {
    const first = spawnServer(await env({ KERNEX_REDIS_URL: redis.url, KERNEX_NODE_ID: 'twin' }));
    await first.ready;
    const second = spawnServer(await env({ KERNEX_REDIS_URL: redis.url, KERNEX_NODE_ID: 'twin' }));
    const { code } = await second.exited;
    expect(code).toBe(1);
    expect(second.stderr).toContain('KERNEX_NODE_ID twin');
    first.proc.kill('SIGKILL');
    await first.exited;
    // Its lock went with its connection: a restart under the same id is let in at once.
    const again = spawnServer(await env({ KERNEX_REDIS_URL: redis.url, KERNEX_NODE_ID: 'twin' }));
    const { httpPort } = await again.ready;
    const nodes = (await api('GET', `http://127.0.0.1:${httpPort}/api/v1/nodes`, adminHeaders)).body.items;
    expect(nodes.filter((n: { id: string }) => n.id === 'twin')).toHaveLength(1);
    again.proc.kill('SIGTERM');
    expect((await again.exited).code).toBe(0);
  });

  it('without KERNEX_REDIS_URL lists itself as the one node and reports no Redis', async () => {
    const server = await startTestServer();
    try {
      const res = await api('GET', `${server.httpUrl}/api/v1/nodes`, server.adminHeaders);
      expect(res.status).toBe(200);
      expect(res.body.items).toHaveLength(1);
      expect(res.body.items[0]).toMatchObject({ leader: true, leaseExpiresAt: null, connections: 0 });
      expect(res.body.nextCursor).toBeNull();
      const ready = (await api('GET', `${server.httpUrl}/readyz`, {})).body;
      expect(ready.checks).not.toHaveProperty('redis');
    } finally {
      await server.stop();
    }
  });
});
