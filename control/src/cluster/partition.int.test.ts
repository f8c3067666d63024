import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { adminHeaders, CLUSTER_ADMIN_KEY, startCluster, stopCluster, type ClusterNodeProcess } from '../test-support/cluster.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { connectDevice, metric } from '../test-support/mqtt.js';
import { createNetns, type Netns } from '../test-support/netns.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/**
 * A node on another "host" (a network namespace joined by a veth pair) that
 * falls off the network without dying (DESIGN §8): its lease, judged by the
 * database, ends; its devices reconnect to the node that is left; when the link
 * returns it takes back only the sessions it still holds.
 */
describe('a node cut off from the network, not killed', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let netns: Netns;
  let nodes: ClusterNodeProcess[] = [];
  let cutOff: ServerProcess | undefined;
  let cutOffUrls: { http: string; mqtt: string };
  let dataDir: string;
  let agent: FleetAgent | undefined;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    [db, redis] = await Promise.all([createTestDatabase(), startRedis()]);
    netns = await createNetns();
    // Node 1 on this host starts first, so it leads: node 2's cut cannot hold the orchestrator's lock.
    nodes = await startCluster({ count: 1, databaseUrl: db.url, redisUrl: redis.url });
    const dbUrl = new URL(db.url);
    const viaLink = new URL(db.url);
    viaLink.hostname = netns.hostIp;
    viaLink.port = String(await netns.forward(Number(dbUrl.port)));
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-netns-node-'));
    cutOff = spawnServer(
      {
        KERNEX_DATA_DIR: dataDir,
        KERNEX_HOST: '0.0.0.0',
        KERNEX_HTTP_PORT: '0',
        KERNEX_MQTT_PORT: '0',
        DATABASE_URL: viaLink.toString(),
        KERNEX_REDIS_URL: `redis://${netns.hostIp}:${await netns.forward(redis.port)}`,
        KERNEX_NODE_ID: 'node-2',
        KERNEX_ADMIN_KEY: CLUSTER_ADMIN_KEY,
        KERNEX_BUNDLE_DIR: nodes[0]!.bundleDir,
        KERNEX_ORCHESTRATOR_TICK_MS: '200',
      },
      ['server'],
      { wrap: netns.wrap },
    );
    const { httpPort, mqttPort } = await cutOff.ready;
    cutOffUrls = { http: `http://${netns.nsIp}:${httpPort}`, mqtt: `mqtt://${netns.nsIp}:${mqttPort}` };
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await agent?.stop().catch(() => {});
    if (cutOff && cutOff.proc.exitCode === null && cutOff.proc.signalCode === null) cutOff.proc.kill('SIGKILL');
    await cutOff?.exited;
    await stopCluster(nodes);
    await netns?.destroy();
    await redis?.stop();
    await db?.drop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
    if (agent) await fs.rm(agent.stateDir, { recursive: true, force: true });
  });

  it('shows the devices left on it offline by its lease while the others fail over, and takes back only its own sessions when the link returns', { timeout: 300_000 }, async () => {
    const live = nodes[0]!;
    const online = async (id: string): Promise<boolean> => (await api('GET', `${live.httpUrl}/api/v1/devices/${id}`, adminHeaders)).body.online;
    const token = await enrollmentToken(live.httpUrl, adminHeaders, 10);
    // The agent is on node 2 and has node 1 next in its list; the lone device stays with node 2.
    agent = await startAgent(live.httpUrl, token, { KERNEX_MQTT_URL: `${cutOffUrls.mqtt},${live.mqttUrl}`, KERNEX_KEEPALIVE_S: '10' });
    const lone = await makeDevice();
    expect((await register(live.httpUrl, lone, { enrollmentToken: token })).status).toBe(201);
    // No keepalive: its idle connection outlives the cut.
    clients.push(await connectDevice(cutOffUrls.mqtt, lone, { keepalive: 0 }));
    expect(await metric(cutOffUrls.http, 'kernex_devices_connected')).toBe(2);
    await expect.poll(() => online(lone.id)).toBe(true);

    await netns.cut();
    // The agent misses its keepalive answers, gives up on node 2 and connects to node 1.
    await expect.poll(() => metric(live.httpUrl, 'kernex_devices_connected'), { timeout: 180_000 }).toBe(1);
    // Node 2 runs on but cannot renew: by the database's clock its lease ends, and the device left on it shows offline.
    await expect.poll(() => online(lone.id), { timeout: 30_000 }).toBe(false);
    expect(cutOff!.proc.exitCode).toBeNull();
    const listed = (await api('GET', `${live.httpUrl}/api/v1/nodes`, adminHeaders)).body.items.find((n: { id: string }) => n.id === 'node-2');
    expect(new Date(listed.leaseExpiresAt).getTime()).toBeLessThanOrEqual(Date.now());
    await expect.poll(() => online(agent!.deviceId)).toBe(true);
    // The node that is left drives the agent.
    const upload = await fetch(`${live.httpUrl}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ version: '1.0.0' }), headers: { ...adminHeaders, 'content-type': 'application/gzip' } });
    expect(upload.status).toBe(201);
    const created = await api('POST', `${live.httpUrl}/api/v1/deployments`, adminHeaders, { bundleId: ((await upload.json()) as { id: string }).id, target: { deviceIds: [agent.deviceId] } });
    expect(created.status).toBe(201);
    await expect.poll(async () => (await api('GET', `${live.httpUrl}/api/v1/deployments/${created.body.id}`, adminHeaders)).body.status, { timeout: 30_000 }).toBe('completed');

    await netns.restore();
    // Node 2 renews, finds its lease had lapsed, and writes online again the session it still holds.
    await expect.poll(() => online(lone.id), { timeout: 180_000 }).toBe(true);
    // It has closed the agent's old session and written what it had pending; the agent stays on node 1.
    await expect.poll(async () => [await metric(cutOffUrls.http, 'kernex_devices_connected'), await metric(cutOffUrls.http, 'kernex_writer_backlog', { writer: 'presence' })], { timeout: 60_000 }).toEqual([1, 0]);
    expect(await online(agent.deviceId)).toBe(true);
    expect(await metric(live.httpUrl, 'kernex_devices_connected')).toBe(1);
  });
});
