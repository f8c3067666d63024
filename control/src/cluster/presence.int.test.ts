import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminHeaders, startCluster, stopCluster, type ClusterNodeProcess } from '../test-support/cluster.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { startHoldingProxy, type HoldingProxy } from '../test-support/holding-proxy.js';
import { closed, connectDevice, metric } from '../test-support/mqtt.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { startTcpProxy, type TcpProxy } from '../test-support/tcp-proxy.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/**
 * Presence across two real nodes (DESIGN §8) when their batched writes reach
 * PostgreSQL in another order than the connections happened, or when one node
 * loses the database and Redis for a while: node 1 reaches the database through
 * a proxy that can hold back its write of one device, and both the database
 * and Redis through proxies that can be cut.
 */
describe('presence of a device that moves between nodes', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let proxy: HoldingProxy;
  let dbLink: TcpProxy;
  let redisLink: TcpProxy;
  let nodes: ClusterNodeProcess[] = [];
  const clients: MqttClient[] = [];
  let token: string;

  beforeAll(async () => {
    [db, redis] = await Promise.all([createTestDatabase(), startRedis()]);
    const url = new URL(db.url);
    proxy = await startHoldingProxy(Number(url.port));
    dbLink = await startTcpProxy(proxy.port);
    redisLink = await startTcpProxy(redis.port);
    url.port = String(dbLink.port);
    nodes = await startCluster({
      count: 2,
      databaseUrl: db.url,
      redisUrl: redis.url,
      nodeEnv: [{ DATABASE_URL: url.toString(), KERNEX_REDIS_URL: `redis://127.0.0.1:${redisLink.port}` }],
    });
    token = await enrollmentToken(nodes[1]!.httpUrl, adminHeaders, 10);
  });
  afterAll(async () => {
    proxy?.release();
    for (const c of clients) c.end(true);
    await stopCluster(nodes);
    await dbLink?.close();
    await redisLink?.close();
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

  it('takes back after a lapsed lease only the sessions still its own, not one a device moved to another node meanwhile', async () => {
    const [a, b] = nodes as [ClusterNodeProcess, ClusterNodeProcess];
    const online = async (id: string): Promise<boolean> => (await api('GET', `${b.httpUrl}/api/v1/devices/${id}`, adminHeaders)).body.online;
    const [stays, moves] = [await makeDevice(), await makeDevice()];
    for (const d of [stays, moves]) {
      expect((await register(b.httpUrl, d, { enrollmentToken: token })).status).toBe(201);
      // No keepalive: node 1 keeps these sessions however long it hears nothing.
      clients.push(await connectDevice(a.mqttUrl, d, { keepalive: 0 }));
      await expect.poll(() => online(d.id)).toBe(true);
    }

    // Node 1 loses the database and Redis; one device moves to node 2, whose announcement node 1 never hears.
    const onB = await metric(b.httpUrl, 'kernex_devices_connected');
    await Promise.all([dbLink.cut(), redisLink.cut()]);
    clients.push(await connectDevice(b.mqttUrl, moves));
    await expect.poll(() => metric(b.httpUrl, 'kernex_devices_connected')).toBe(onB + 1);
    await expect.poll(() => metric(b.httpUrl, 'kernex_writer_backlog', { writer: 'presence' })).toBe(0);
    // Node 1's lease ends, by the database's clock: the device left with it is swept offline, the one that moved is not.
    await expect.poll(() => online(stays.id), { timeout: 30_000 }).toBe(false);
    expect(await online(moves.id)).toBe(true);

    // Node 1 comes back: it renews, finds its lease had lapsed, and writes its sessions online again, in one batch.
    await Promise.all([dbLink.restore(), redisLink.restore()]);
    await expect.poll(() => online(stays.id), { timeout: 30_000 }).toBe(true);
    // Had that batch claimed the device that moved, node 1's death would now sweep it offline with the other.
    await a.kill();
    await expect.poll(() => online(stays.id), { timeout: 30_000 }).toBe(false);
    expect(await online(moves.id)).toBe(true);
  });
});
