import { cmdTopic } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { adminHeaders, startCluster, stopCluster, type ClusterNodeProcess } from '../test-support/cluster.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { closed, connectDevice, metric, nextCommand } from '../test-support/mqtt.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { startTcpProxy, type TcpProxy } from '../test-support/tcp-proxy.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/**
 * Each node's map of which node holds which device (DESIGN §8), on two real
 * `kernex server` nodes: node 1 leads (it publishes every command) and reaches
 * Redis directly; node 2 reaches it through a proxy the test can cut, so that
 * only node 2 loses Redis.
 */
describe('where a cluster’s nodes think devices are', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let proxy: TcpProxy;
  let nodes: ClusterNodeProcess[] = [];
  let lead: ClusterNodeProcess;
  let other: ClusterNodeProcess;
  let token: string;
  let bundleId: string;
  const clients: MqttClient[] = [];

  const owners = (n: ClusterNodeProcess): Promise<number> => metric(n.httpUrl, 'kernex_cluster_device_owners');
  const sent = (route: string): Promise<number> => metric(lead.httpUrl, 'kernex_cluster_commands_sent_total', { route });
  async function enrolled(): Promise<TestDevice> {
    const d = await makeDevice();
    expect((await register(lead.httpUrl, d, { enrollmentToken: token })).status).toBe(201);
    return d;
  }
  async function connect(n: ClusterNodeProcess, d: TestDevice, opts: { keepalive?: number } = {}): Promise<MqttClient> {
    const c = await connectDevice(n.mqttUrl, d, opts);
    clients.push(c);
    await c.subscribeAsync(cmdTopic(d.id), { qos: 1 });
    return c;
  }
  /** Deploys to `d` through the leader and resolves with the command the client received. */
  async function deployTo(d: TestDevice, c: MqttClient): Promise<void> {
    const command = nextCommand(c);
    const created = await api('POST', `${lead.httpUrl}/api/v1/deployments`, adminHeaders, { bundleId, target: { deviceIds: [d.id] } });
    expect(created.status).toBe(201);
    expect(await command).toMatchObject({ type: 'deploy', bundle: { id: bundleId } });
  }

  beforeAll(async () => {
    [db, redis] = await Promise.all([createTestDatabase(), startRedis()]);
    proxy = await startTcpProxy(redis.port);
    // A long tick: a command is sent once, when the deployment is created (no tick re-sends it).
    nodes = await startCluster({
      count: 2,
      databaseUrl: db.url,
      redisUrl: redis.url,
      env: { KERNEX_ORCHESTRATOR_TICK_MS: '600000' },
      nodeEnv: [undefined, { KERNEX_REDIS_URL: `redis://127.0.0.1:${proxy.port}` }],
    });
    [lead, other] = nodes as [ClusterNodeProcess, ClusterNodeProcess];
    const listed = (await api('GET', `${lead.httpUrl}/api/v1/nodes`, adminHeaders)).body.items as Array<{ id: string; leader: boolean }>;
    expect(listed.find((n) => n.leader)?.id).toBe(lead.id); // it started first and took the lock
    token = await enrollmentToken(lead.httpUrl, adminHeaders, 20);
    const upload = await fetch(`${lead.httpUrl}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ version: '1.0.0' }), headers: { ...adminHeaders, 'content-type': 'application/gzip' } });
    expect(upload.status).toBe(201);
    bundleId = ((await upload.json()) as { id: string }).id;
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await stopCluster(nodes);
    await proxy?.close();
    await redis?.stop();
    await db?.drop();
  });

  it('forgets devices on every node once they disconnect', async () => {
    const before = [await owners(lead), await owners(other)];
    const here = [];
    for (let i = 0; i < 3; i++) here.push(await connect(other, await enrolled()));
    await expect.poll(async () => [await owners(lead), await owners(other)]).toEqual([before[0]! + 3, before[1]! + 3]);
    await Promise.all(here.map((c) => c.endAsync()));
    await expect.poll(async () => [await owners(lead), await owners(other)]).toEqual(before);
  });

  it('keeps a device that moved from one node to another on the new node when the old one announces its disconnect', async () => {
    const d = await enrolled();
    const before = [await owners(lead), await owners(other)];
    const old = await connect(lead, d);
    const known = [before[0]! + 1, before[1]! + 1];
    await expect.poll(async () => [await owners(lead), await owners(other)]).toEqual(known);
    const received = await metric(other.httpUrl, 'kernex_cluster_bus_received_total', { kind: 'packet' });
    const oldClosed = closed(old);
    const moved = await connect(other, d);
    // Node 1 heard node 2's connect first (Aedes closes its own connection on it), then ended its own:
    // its announcement of that end reaches node 2 after node 2's connect.
    await oldClosed;
    await expect.poll(() => metric(other.httpUrl, 'kernex_cluster_bus_received_total', { kind: 'packet' })).toBe(received + 1);
    expect([await owners(lead), await owners(other)]).toEqual(known);

    const [owner, broadcast] = [await sent('owner'), await sent('broadcast')];
    const gotAsOwner = await metric(other.httpUrl, 'kernex_cluster_commands_received_total', { route: 'owner' });
    await deployTo(d, moved);
    await expect.poll(() => sent('owner')).toBe(owner + 1);
    expect(await sent('broadcast')).toBe(broadcast);
    expect(await metric(other.httpUrl, 'kernex_cluster_commands_received_total', { route: 'owner' })).toBe(gotAsOwner + 1);
  });

  it('learns which devices a node took while its Redis was away once it returns, without the devices reconnecting, and not one that moved away meanwhile', async () => {
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const recordedOn = async (id: string): Promise<string | null> => (await sql<Array<{ node_id: string | null }>>`select node_id from devices where id = ${id}`)[0]!.node_id;
      // A device on node 2 that moves to node 1 while node 2's Redis is away: node 2 never hears of it,
      // and its old connection (no keepalive) stays open there.
      const left = await enrolled();
      const known = await owners(lead);
      await connect(other, left, { keepalive: 0 });
      await expect.poll(async () => [await recordedOn(left.id), await owners(lead)]).toEqual([other.id, known + 1]);
      const before = known + 1;
      await proxy.cut();
      await expect.poll(() => metric(other.httpUrl, 'kernex_cluster_redis_up')).toBe(0);
      const d = await enrolled();
      const c = await connect(other, d);
      const moved = await connect(lead, left);
      // Both connects are recorded in PostgreSQL; their announcements crossed to nobody.
      await expect.poll(async () => [await recordedOn(d.id), await recordedOn(left.id)]).toEqual([other.id, lead.id]);
      expect(await owners(lead)).toBe(before);
      expect(await metric(other.httpUrl, 'kernex_devices_connected')).toBe(3); // `left`'s old connection too

      await proxy.restore();
      await expect.poll(() => metric(other.httpUrl, 'kernex_cluster_redis_up'), { timeout: 30_000 }).toBe(1);
      await expect.poll(() => owners(lead)).toBe(before + 1);
      const [owner, broadcast] = [await sent('owner'), await sent('broadcast')];
      const gotAsOwner = await metric(other.httpUrl, 'kernex_cluster_commands_received_total', { route: 'owner' });
      await deployTo(d, c);
      await expect.poll(() => sent('owner')).toBe(owner + 1);
      expect(await sent('broadcast')).toBe(broadcast);
      await expect.poll(() => metric(other.httpUrl, 'kernex_cluster_commands_received_total', { route: 'owner' })).toBe(gotAsOwner + 1);
      // The device that moved to node 1 stays node 1's: its command does not cross to node 2. A command
      // for a device connected to node 2 since, sent after it, reaches node 2 after it would have.
      const marker = await enrolled();
      const markerClient = await connect(other, marker);
      await expect.poll(() => owners(lead)).toBe(before + 2);
      await deployTo(left, moved);
      await deployTo(marker, markerClient);
      expect(await metric(other.httpUrl, 'kernex_cluster_commands_received_total', { route: 'owner' })).toBe(gotAsOwner + 2);
    } finally {
      await sql.end();
    }
  });
});
