import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminHeaders, startCluster, stopCluster, type ClusterNodeProcess } from '../test-support/cluster.js';
import { api } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { startHaproxy, type TestHaproxy } from '../test-support/haproxy.js';
import { metric } from '../test-support/mqtt.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/** A real agent moves from a dead node to a live one by itself (DESIGN §8). */
describe('an agent when its node dies', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let nodes: ClusterNodeProcess[] = [];
  let haproxy: TestHaproxy | undefined;
  const agents: FleetAgent[] = [];
  let token: string;

  const deviceOn = async (n: ClusterNodeProcess, id: string): Promise<any> => (await api('GET', `${n.httpUrl}/api/v1/devices/${id}`, adminHeaders)).body;

  beforeAll(async () => {
    [db, redis] = await Promise.all([createTestDatabase(), startRedis()]);
    nodes = await startCluster({ count: 2, databaseUrl: db.url, redisUrl: redis.url });
    token = await enrollmentToken(nodes[0]!.httpUrl, adminHeaders, 10);
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop().catch(() => {})));
    await haproxy?.stop();
    await stopCluster(nodes);
    await redis?.stop();
    await db?.drop();
    for (const a of agents) await fs.rm(a.stateDir, { recursive: true, force: true });
  });

  it('fails over through the mqtt URL list it was told at registration', async () => {
    const [n1, n2] = nodes as [ClusterNodeProcess, ClusterNodeProcess];
    // KERNEX_MQTT_URLS is node 1, node 2: the registration answer lists both, in that order.
    const agent = await startAgent(n2.httpUrl, token);
    agents.push(agent);
    // Where a device is: the node's own gauge of connected devices.
    expect([await metric(n1.httpUrl, 'kernex_devices_connected'), await metric(n2.httpUrl, 'kernex_devices_connected')]).toEqual([1, 0]);
    await n1.kill();
    await expect.poll(() => metric(n2.httpUrl, 'kernex_devices_connected'), { timeout: 30_000 }).toBe(1);
    await expect.poll(async () => (await deviceOn(n2, agent.deviceId)).online, { timeout: 30_000 }).toBe(true);
    await n1.start();
  });

  it('fails over behind HAProxy, which sends it to the live node', async () => {
    const [n1, n2] = nodes as [ClusterNodeProcess, ClusterNodeProcess];
    haproxy = await startHaproxy([n1.mqttPort, n2.mqttPort]);
    const agent = await startAgent(n2.httpUrl, token, { KERNEX_MQTT_URL: haproxy.url });
    agents.push(agent);
    // `balance first`: node 1 has it (the first test's device stayed on node 2).
    expect([await metric(n1.httpUrl, 'kernex_devices_connected'), await metric(n2.httpUrl, 'kernex_devices_connected')]).toEqual([1, 1]);
    await n1.kill();
    await expect.poll(() => metric(n2.httpUrl, 'kernex_devices_connected'), { timeout: 30_000 }).toBe(2);
    await expect.poll(async () => (await deviceOn(n2, agent.deviceId)).online, { timeout: 30_000 }).toBe(true);
    // And GET /api/v1/nodes tells the same at node 2's next renewal.
    await expect.poll(async () => (await api('GET', `${n2.httpUrl}/api/v1/nodes`, adminHeaders)).body.items.find((x: { id: string }) => x.id === 'node-2')?.connections).toBe(2);
  });
});
