import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminHeaders, startCluster, stopCluster, type ClusterNodeProcess } from '../test-support/cluster.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { startHoldingProxy, type HoldingProxy } from '../test-support/holding-proxy.js';
import { closed, connectDevice, metric } from '../test-support/mqtt.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/**
 * Presence across two real nodes (DESIGN §8) when their batched writes reach
 * PostgreSQL in another order than the connections happened: node 1 reaches
 * the database through a proxy that can hold back its write of one device.
 */
describe('presence of a device that moves between nodes', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let proxy: HoldingProxy;
  let nodes: ClusterNodeProcess[] = [];
  const clients: MqttClient[] = [];
  let token: string;

  beforeAll(async () => {
    [db, redis] = await Promise.all([createTestDatabase(), startRedis()]);
    const url = new URL(db.url);
    proxy = await startHoldingProxy(Number(url.port));
    url.port = String(proxy.port);
    nodes = await startCluster({ count: 2, databaseUrl: db.url, redisUrl: redis.url, nodeEnv: [{ DATABASE_URL: url.toString() }] });
    token = await enrollmentToken(nodes[1]!.httpUrl, adminHeaders, 10);
  });
  afterAll(async () => {
    proxy?.release();
    for (const c of clients) c.end(true);
    await stopCluster(nodes);
    await proxy?.close();
    await redis?.stop();
    await db?.drop();
  });

  it('ends online on the node that took the session over when the old node writes its connect and close late', async () => {
    const [a, b] = nodes as [ClusterNodeProcess, ClusterNodeProcess];
    const online = async (): Promise<boolean> => (await api('GET', `${b.httpUrl}/api/v1/devices/${d.id}`, adminHeaders)).body.online;
    const settled = async (n: ClusterNodeProcess): Promise<number[]> => [
      await metric(n.httpUrl, 'kernex_devices_connected'),
      await metric(n.httpUrl, 'kernex_writer_backlog', { writer: 'presence' }),
    ];
    const d = await makeDevice();
    expect((await register(b.httpUrl, d, { enrollmentToken: token })).status).toBe(201);
    const jwt = await d.jwt('kernex-mqtt');
    // Node 1 verifies this token once and caches it: its next connect with it asks the database nothing.
    await (await connectDevice(a.mqttUrl, d, { password: jwt })).endAsync();
    await expect.poll(() => settled(a)).toEqual([0, 0]);
    expect(await online()).toBe(false);

    // The device connects to node 1, whose write of that connect is held on its way to the database.
    const held = proxy.hold(d.id);
    const first = await connectDevice(a.mqttUrl, d, { password: jwt });
    clients.push(first);
    await held;
    const firstClosed = closed(first);
    // At once it connects to node 2, which writes its connect first.
    clients.push(await connectDevice(b.mqttUrl, d));
    await expect.poll(online).toBe(true);
    // Node 1 closed the old connection (the takeover crossed) and has its close to write too.
    await firstClosed;
    await expect.poll(() => metric(a.httpUrl, 'kernex_devices_connected')).toBe(0);

    // Node 1's late connect, then its close, reach the database after node 2's connect.
    proxy.release();
    await expect.poll(() => settled(a)).toEqual([0, 0]);
    expect(await online()).toBe(true);
    expect(await metric(b.httpUrl, 'kernex_devices_connected')).toBe(1);
  });
});
