import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { adminHeaders, startCluster, stopCluster, type ClusterNodeProcess } from '../test-support/cluster.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { connectDevice, metric } from '../test-support/mqtt.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/**
 * Faults of a cluster (DESIGN §8) with real processes: a node killed with
 * SIGKILL mid-deployment, the orchestrator's leader killed, Redis restarted
 * mid-rollout. PostgreSQL is the truth; everything else heals from it.
 */
describe('a cluster when a node or Redis fails', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let nodes: ClusterNodeProcess[] = [];
  const agents: FleetAgent[] = [];
  const clients: MqttClient[] = [];
  let token: string;
  let work: string;

  const url = (): string => nodes.find((n) => n.server.proc.exitCode === null && n.server.proc.signalCode === null)!.httpUrl;
  const get = async (p: string): Promise<any> => (await api('GET', `${url()}${p}`, adminHeaders)).body;
  async function upload(bundle: Buffer): Promise<string> {
    const res = await fetch(`${url()}/api/v1/bundles`, { method: 'POST', body: bundle, headers: { ...adminHeaders, 'content-type': 'application/gzip' } });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }
  async function deploy(bundleId: string, deviceIds: string[]): Promise<string> {
    const res = await api('POST', `${url()}/api/v1/deployments`, adminHeaders, { bundleId, target: { deviceIds } });
    expect(res.status).toBe(201);
    return res.body.id as string;
  }
  const leader = async (): Promise<string | undefined> => (await get('/api/v1/nodes')).items.find((n: { leader: boolean }) => n.leader)?.id;

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-failover-'));
    [db, redis] = await Promise.all([createTestDatabase(), startRedis()]);
    nodes = await startCluster({ count: 3, databaseUrl: db.url, redisUrl: redis.url });
    token = await enrollmentToken(nodes[0]!.httpUrl, adminHeaders, 50);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await Promise.all(agents.map((a) => a.stop().catch(() => {})));
    await stopCluster(nodes);
    await redis?.stop();
    await db?.drop();
    for (const a of agents) await fs.rm(a.stateDir, { recursive: true, force: true });
    await fs.rm(work, { recursive: true, force: true });
  });

  it('completes a deployment exactly once when a node is killed mid-deployment, and presence ends correct', async () => {
    const [n1, n2, n3] = nodes as [ClusterNodeProcess, ClusterNodeProcess, ClusterNodeProcess];
    // A starts on node 2 and has node 3 next in its list; B is on node 3.
    const [a, b] = await Promise.all([
      startAgent(n1.httpUrl, token, { KERNEX_MQTT_URL: `${n2.mqttUrl},${n3.mqttUrl}` }),
      startAgent(n1.httpUrl, token, { KERNEX_MQTT_URL: n3.mqttUrl }),
    ]);
    agents.push(a, b);
    // Where a device is: the node's own gauge of connected devices.
    expect(await metric(n2.httpUrl, 'kernex_devices_connected')).toBe(1);
    // A device on node 2 that does not reconnect: its presence shows when node 2's lease has been swept.
    const lone = await makeDevice();
    expect((await register(n1.httpUrl, lone, { enrollmentToken: token })).status).toBe(201);
    clients.push(await connectDevice(n2.mqttUrl, lone));
    // Node 2 has written both online before it dies (presence is written in batches).
    for (const id of [a.deviceId, lone.id]) await expect.poll(async () => (await get(`/api/v1/devices/${id}`)).online).toBe(true);

    const release = path.join(work, 'release');
    const count = path.join(work, 'installs');
    const install = `#!/bin/sh\necho installed >> ${count}\nwhile [ ! -e ${release} ]; do sleep 0.1; done\n`;
    const id = await deploy(await upload(await makeBundle({ version: '1.0.0', install })), [a.deviceId, b.deviceId]);
    const states = async (): Promise<string[]> => (await get(`/api/v1/deployments/${id}/executions`)).items.map((e: { state: string }) => e.state).sort();
    await expect.poll(states, { timeout: 30_000 }).toEqual(['installing', 'installing']);

    await n2.kill();
    await expect.poll(() => metric(n3.httpUrl, 'kernex_devices_connected'), { timeout: 30_000 }).toBe(2);
    await fs.writeFile(release, '');
    await expect.poll(async () => (await get(`/api/v1/deployments/${id}`)).status, { timeout: 30_000 }).toBe('completed');
    expect((await get(`/api/v1/deployments/${id}`)).counts).toMatchObject({ succeeded: 2, failed: 0 });
    // Each device installed once, though A was sent its command again on node 3.
    expect((await fs.readFile(count, 'utf8')).trim().split('\n')).toHaveLength(2);

    // Node 3 has written A online; then node 2's lease ends and is swept (the lone device goes
    // offline), and A, whose session is node 3's, stays online.
    await expect.poll(async () => (await get(`/api/v1/devices/${a.deviceId}`)).online).toBe(true);
    await expect.poll(async () => (await get(`/api/v1/devices/${lone.id}`)).online, { timeout: 30_000 }).toBe(false);
    expect((await get(`/api/v1/devices/${a.deviceId}`)).online).toBe(true);
    expect((await get(`/api/v1/devices/${b.deviceId}`)).online).toBe(true);
    await n2.start();
  });

  it('moves the orchestrator to another node when the leader is killed', async () => {
    const before = await leader();
    const dead = nodes.find((n) => n.id === before)!;
    await dead.kill();
    await expect.poll(async () => (await leader()) ?? before, { timeout: 30_000 }).not.toBe(before);
    // The new leader drives deployments: one created now completes.
    const live = nodes.filter((n) => n !== dead);
    const agent = await startAgent(live[0]!.httpUrl, token, { KERNEX_MQTT_URL: live.map((n) => n.mqttUrl).join(',') });
    agents.push(agent);
    const id = await deploy(await upload(await makeBundle({ version: '2.0.0' })), [agent.deviceId]);
    await expect.poll(async () => (await get(`/api/v1/deployments/${id}`)).status, { timeout: 30_000 }).toBe('completed');
    await dead.start();
  });

  it('completes a rollout when Redis restarts in the middle of it', async () => {
    const lead = await leader();
    // The device is on a node that does not lead: its command must cross Redis.
    const other = nodes.find((n) => n.id !== lead)!;
    const agent = await startAgent(other.httpUrl, token, { KERNEX_MQTT_URL: other.mqttUrl });
    agents.push(agent);
    await redis.stop();
    await expect.poll(async () => (await fetch(`${other.httpUrl}/readyz`)).status).toBe(503);
    const id = await deploy(await upload(await makeBundle({ version: '3.0.0' })), [agent.deviceId]);
    // Dispatched while Redis was away: the publish to the other node was lost.
    await expect.poll(async () => (await get(`/api/v1/deployments/${id}/executions`)).items[0]?.state).toBe('sent');
    await redis.start();
    await expect.poll(async () => (await fetch(`${other.httpUrl}/readyz`)).status).toBe(200);
    await expect.poll(async () => (await get(`/api/v1/deployments/${id}`)).status, { timeout: 30_000 }).toBe('completed');
    expect(await agent.current('app')).toBe('3.0.0');
  });
});
