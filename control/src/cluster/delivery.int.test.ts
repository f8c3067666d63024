import fs from 'node:fs/promises';
import { cmdTopic } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { adminHeaders, startCluster, stopCluster, type ClusterNodeProcess } from '../test-support/cluster.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { closed, connectDevice, metric, nextMessage, refusalCode } from '../test-support/mqtt.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { openSse } from '../test-support/sse.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/**
 * Three real `kernex server` nodes on one PostgreSQL and one redis-server
 * (DESIGN §8): what is asked through one node reaches devices on the others.
 */
describe('a cluster of three nodes', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let nodes: ClusterNodeProcess[] = [];
  const agents: FleetAgent[] = [];
  const clients: MqttClient[] = [];
  let token: string;

  const device = async (httpUrl: string, id: string): Promise<any> => (await api('GET', `${httpUrl}/api/v1/devices/${id}`, adminHeaders)).body;
  /** A registered, accepted device identity (no agent). */
  async function enrolled(): Promise<TestDevice> {
    const d = await makeDevice();
    const res = await register(nodes[0]!.httpUrl, d, { enrollmentToken: token });
    expect(res.status).toBe(201);
    return d;
  }
  async function online(url: string, d: TestDevice): Promise<MqttClient> {
    const c = await connectDevice(url, d);
    clients.push(c);
    return c;
  }

  /** The node running the orchestrator (it publishes every command) and the two others. */
  async function roles(): Promise<{ lead: ClusterNodeProcess; others: [ClusterNodeProcess, ClusterNodeProcess] }> {
    const items = (await api('GET', `${nodes[0]!.httpUrl}/api/v1/nodes`, adminHeaders)).body.items as Array<{ id: string; leader: boolean }>;
    const id = items.find((x) => x.leader)!.id;
    return { lead: nodes.find((n) => n.id === id)!, others: nodes.filter((n) => n.id !== id) as [ClusterNodeProcess, ClusterNodeProcess] };
  }
  /** Commands a node received from the other nodes over Redis, whatever the route. */
  const commandsReceived = async (n: ClusterNodeProcess): Promise<number> => {
    let sum = 0;
    for (const route of ['owner', 'broadcast', 'forwarded']) sum += await metric(n.httpUrl, 'kernex_cluster_commands_received_total', { route });
    return sum;
  };
  async function uploadBundle(version: string): Promise<string> {
    const res = await fetch(`${nodes[0]!.httpUrl}/api/v1/bundles`, {
      method: 'POST',
      body: await makeBundle({ version }),
      headers: { ...adminHeaders, 'content-type': 'application/gzip' },
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  beforeAll(async () => {
    [db, redis] = await Promise.all([createTestDatabase(), startRedis()]);
    // A long tick: a deployment moves only when something wakes the leader (events stored on other nodes NOTIFY it).
    nodes = await startCluster({ count: 3, databaseUrl: db.url, redisUrl: redis.url, env: { KERNEX_ORCHESTRATOR_TICK_MS: '600000' } });
    token = await enrollmentToken(nodes[0]!.httpUrl, adminHeaders, 50);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await Promise.all(agents.map((a) => a.stop().catch(() => {})));
    await stopCluster(nodes);
    await redis?.stop();
    await db?.drop();
    for (const a of agents) await fs.rm(a.stateDir, { recursive: true, force: true });
  });

  it('lists every node, exactly one of them the leader, from any node', async () => {
    for (const n of nodes) {
      const res = await api('GET', `${n.httpUrl}/api/v1/nodes`, adminHeaders);
      expect(res.status).toBe(200);
      expect(res.body.items.map((x: { id: string }) => x.id)).toEqual(['node-1', 'node-2', 'node-3']);
      expect(res.body.items.filter((x: { leader: boolean }) => x.leader)).toHaveLength(1);
      for (const x of res.body.items) expect(new Date(x.leaseExpiresAt).getTime()).toBeGreaterThan(new Date(x.startedAt).getTime());
    }
  });

  it('completes a deployment created via node 1 on devices connected to nodes 2 and 3', async () => {
    const [a, b] = await Promise.all([
      startAgent(nodes[0]!.httpUrl, token, { KERNEX_MQTT_URL: nodes[1]!.mqttUrl }),
      startAgent(nodes[0]!.httpUrl, token, { KERNEX_MQTT_URL: nodes[2]!.mqttUrl }),
    ]);
    agents.push(a, b);
    const upload = await fetch(`${nodes[0]!.httpUrl}/api/v1/bundles`, {
      method: 'POST',
      body: await makeBundle({ version: '1.0.0' }),
      headers: { ...adminHeaders, 'content-type': 'application/gzip' },
    });
    expect(upload.status).toBe(201);
    const { id: bundleId } = (await upload.json()) as { id: string };
    const created = await api('POST', `${nodes[0]!.httpUrl}/api/v1/deployments`, adminHeaders, { bundleId, target: { deviceIds: [a.deviceId, b.deviceId] } });
    expect(created.status).toBe(201);
    await expect.poll(async () => (await api('GET', `${nodes[0]!.httpUrl}/api/v1/deployments/${created.body.id}`, adminHeaders)).body.status, { timeout: 30_000 }).toBe('completed');
    const d = (await api('GET', `${nodes[2]!.httpUrl}/api/v1/deployments/${created.body.id}`, adminHeaders)).body;
    expect(d.counts).toMatchObject({ succeeded: 2, failed: 0 });
    expect(await a.current('app')).toBe('1.0.0');
    expect(await b.current('app')).toBe('1.0.0');
  });

  it('sends a command for a device on another node across Redis to that node only', async () => {
    const { lead, others: [owner, bystander] } = await roles();
    const known = await metric(lead.httpUrl, 'kernex_cluster_device_owners');
    const agent = await startAgent(owner.httpUrl, token, { KERNEX_MQTT_URL: owner.mqttUrl });
    agents.push(agent);
    // The leader has heard the owner announce the device's connection.
    await expect.poll(() => metric(lead.httpUrl, 'kernex_cluster_device_owners')).toBeGreaterThan(known);
    const before = {
      owner: await metric(owner.httpUrl, 'kernex_cluster_commands_received_total', { route: 'owner' }),
      bystander: await commandsReceived(bystander),
      sent: await metric(lead.httpUrl, 'kernex_cluster_commands_sent_total', { route: 'owner' }),
    };
    const bundleId = await uploadBundle('1.1.0');
    const created = await api('POST', `${lead.httpUrl}/api/v1/deployments`, adminHeaders, { bundleId, target: { deviceIds: [agent.deviceId] } });
    expect(created.status).toBe(201);
    await expect.poll(async () => (await api('GET', `${lead.httpUrl}/api/v1/deployments/${created.body.id}`, adminHeaders)).body.status, { timeout: 30_000 }).toBe('completed');
    expect(await agent.current('app')).toBe('1.1.0');
    // aedes#703: the third node never saw it.
    expect(await commandsReceived(bystander)).toBe(before.bystander);
    expect(await metric(lead.httpUrl, 'kernex_cluster_commands_sent_total', { route: 'owner' })).toBeGreaterThan(before.sent);
    expect(await metric(owner.httpUrl, 'kernex_cluster_commands_received_total', { route: 'owner' })).toBeGreaterThan(before.owner);
  });

  it('delivers a command published right after a takeover to the node that took the session over', async () => {
    const { lead, others: [from, to] } = await roles();
    const d = await enrolled();
    const bundleId = await uploadBundle('1.2.0');
    const first = await online(from.mqttUrl, d);
    await first.subscribeAsync(cmdTopic(d.id), { qos: 1 });
    // Every node has heard that the old node holds the session.
    await expect.poll(async () => (await device(lead.httpUrl, d.id)).online).toBe(true);
    const firstClosed = closed(first);
    const second = await online(to.mqttUrl, d);
    const got = nextMessage(second);
    await second.subscribeAsync(cmdTopic(d.id), { qos: 1 });
    // At once, racing the takeover's announcement to the leader and the old node.
    const created = await api('POST', `${lead.httpUrl}/api/v1/deployments`, adminHeaders, { bundleId, target: { deviceIds: [d.id] } });
    expect(created.status).toBe(201);
    const [topic, payload] = await got;
    expect(topic).toBe(cmdTopic(d.id));
    const command = JSON.parse(payload.toString('utf8'));
    expect(command).toMatchObject({ type: 'deploy', bundle: { id: bundleId } });
    await firstClosed;
    expect((await api('POST', `${lead.httpUrl}/api/v1/deployments/${created.body.id}/cancel`, adminHeaders)).status).toBe(200);
  });

  it('disconnects a device on node 1 when it is decommissioned via node 3, and no node lets its cached token in again', async () => {
    const d = await enrolled();
    const jwt = await d.jwt('kernex-mqtt');
    // Node 2 has verified (and cached) this very token before the device moved to node 1.
    await (await connectDevice(nodes[1]!.mqttUrl, d, { password: jwt })).endAsync();
    const client = await online(nodes[0]!.mqttUrl, d);
    const gone = closed(client);
    const res = await api('DELETE', `${nodes[2]!.httpUrl}/api/v1/devices/${d.id}`, adminHeaders);
    expect(res.status).toBe(200);
    await gone;
    for (const n of nodes) expect([n.id, await refusalCode(connectDevice(n.mqttUrl, d, { password: jwt }))]).toEqual([n.id, 5]);
  });

  it('keeps a device online when its session is taken over on another node', async () => {
    const d = await enrolled();
    const first = await online(nodes[0]!.mqttUrl, d);
    await expect.poll(async () => (await device(nodes[0]!.httpUrl, d.id)).online).toBe(true);
    const firstClosed = closed(first);
    await online(nodes[1]!.mqttUrl, d);
    // Node 1 closes its older connection: the takeover crossed the nodes.
    await firstClosed;
    // Node 1 writes presence in order: once a later connect there is written, so is the old socket's close.
    const marker = await enrolled();
    await online(nodes[0]!.mqttUrl, marker);
    await expect.poll(async () => (await device(nodes[2]!.httpUrl, marker.id)).online).toBe(true);
    expect((await device(nodes[2]!.httpUrl, d.id)).online).toBe(true);
  });

  it('streams on node 3 the presence of a device that connected to node 1 (GET /api/v1/events)', async () => {
    const stream = await openSse(`${nodes[2]!.httpUrl}/api/v1/events`, adminHeaders);
    try {
      expect(stream.status).toBe(200);
      const d = await enrolled();
      const seen = stream.waitFor((e) => e.event === 'device' && e.data.id === d.id && e.data.online === true);
      await online(nodes[0]!.mqttUrl, d);
      await seen;
    } finally {
      stream.close();
    }
  });

  it('shows the devices of a killed node offline, judged by its lease', async () => {
    const d = await enrolled();
    const client = await online(nodes[2]!.mqttUrl, d);
    await expect.poll(async () => (await device(nodes[0]!.httpUrl, d.id)).online).toBe(true);
    await nodes[2]!.kill();
    // DESIGN §8: within 15 s; polled a little longer so a loaded machine does not flake.
    await expect.poll(async () => (await device(nodes[0]!.httpUrl, d.id)).online, { timeout: 30_000 }).toBe(false);
    const listed = (await api('GET', `${nodes[0]!.httpUrl}/api/v1/nodes`, adminHeaders)).body.items.find((x: { id: string }) => x.id === 'node-3');
    expect(new Date(listed.leaseExpiresAt).getTime()).toBeLessThanOrEqual(Date.now());
  });
});
