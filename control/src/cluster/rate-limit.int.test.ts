import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopCluster, type ClusterNodeProcess } from '../test-support/cluster.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/** Rate limits count across the cluster (DESIGN §8): more nodes do not mean a bigger budget. */
describe('API rate limits in a cluster', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let nodes: ClusterNodeProcess[] = [];
  const LIMIT = 6;

  beforeAll(async () => {
    [db, redis] = await Promise.all([createTestDatabase(), startRedis()]);
    nodes = await startCluster({ count: 2, databaseUrl: db.url, redisUrl: redis.url, env: { KERNEX_RATE_LIMIT_PER_MIN: String(LIMIT) } });
  });
  afterAll(async () => {
    await stopCluster(nodes);
    await redis?.stop();
    await db?.drop();
  });

  it('refuses an address that spent its budget on one node when it asks the other', async () => {
    // Requests without credentials count per address: half of the budget on each node.
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT; i++) statuses.push((await fetch(`${nodes[i % 2]!.httpUrl}/api/v1/nodes`)).status);
    expect(statuses).toEqual(Array(LIMIT).fill(401));
    const over = await fetch(`${nodes[0]!.httpUrl}/api/v1/nodes`);
    expect(over.status).toBe(429);
    expect(((await over.json()) as { code: string }).code).toBe('KX_RATE_LIMITED');
  });
});
