import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Device, type CommandHandler } from '@kernex/agent';
import { cmdTopic, eventsTopic, type Command, type ExecutionState } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { DeploymentsStore } from '../store/deployments.pg.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { brokerEvent, connectDevice, nextCommand } from '../test-support/mqtt.js';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { startTcpProxy, type TcpProxy } from '../test-support/tcp-proxy.js';
import { serverEnv, type ServerEnv } from '../test-support/server-env.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

const STEPS: ExecutionState[] = ['received', 'downloading', 'installing', 'verifying'];

async function uploadBundle(httpUrl: string, headers: Record<string, string>, version: string): Promise<string> {
  const res = await fetch(`${httpUrl}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ name: 'app', version }), headers: { ...headers, 'content-type': 'application/gzip' } });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

/** Deploys a new version to one device; resolves with the deployment id. */
async function deployTo(httpUrl: string, headers: Record<string, string>, deviceId: string, version: string): Promise<string> {
  const bundleId = await uploadBundle(httpUrl, headers, version);
  const created = await api('POST', `${httpUrl}/api/v1/deployments`, headers, { bundleId, target: { deviceIds: [deviceId] } });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

const event = (executionId: string, state: ExecutionState): string => JSON.stringify({ executionId, state, ts: Date.now() });

describe('an execution event is acknowledged only once it is stored', () => {
  let setup: ServerEnv | undefined;
  let server: ServerProcess | undefined;

  afterAll(async () => {
    if (server && server.proc.exitCode === null && server.proc.signalCode === null) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
    await setup?.remove();
  });

  it('keeps `succeeded` after a SIGKILL right after its PUBACK, every time', async () => {
    setup = await serverEnv('event-ack');
    const { env, headers, httpUrl } = setup;
    const { mqttUrl } = setup;
    server = spawnServer(env);
    await server.ready;
    const device = await makeDevice();
    expect((await register(httpUrl, device, { enrollmentToken: await enrollmentToken(httpUrl, headers, 1) })).body.status).toBe('accepted');

    for (let round = 1; round <= 3; round++) {
      const client = await connectDevice(mqttUrl, device, { clean: false });
      await client.subscribeAsync(cmdTopic(device.id), { qos: 1 });
      const command = nextCommand(client);
      const deploymentId = await deployTo(httpUrl, headers, device.id, `1.0.${round}`);
      const { executionId } = await command;
      for (const state of STEPS) await client.publishAsync(eventsTopic(device.id), event(executionId, state), { qos: 1 });

      // publishAsync resolves on the PUBACK: the server dies at once after it.
      await client.publishAsync(eventsTopic(device.id), event(executionId, 'succeeded'), { qos: 1 });
      server.proc.kill('SIGKILL');
      expect((await server.exited).signal).toBe('SIGKILL');
      await client.endAsync(true);

      server = spawnServer(env);
      await server.ready;
      const executions = await api('GET', `${httpUrl}/api/v1/deployments/${deploymentId}/executions`, headers);
      expect(executions.body.items.map((e: { state: string }) => e.state)).toEqual(['succeeded']);
    }
  });
});

describe('event storage against a real server', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let server: TestServer;
  let mqttUrl: string;
  let token: string;
  let store: DeploymentsStore;
  const clients: MqttClient[] = [];
  const devices: Device[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    const target = new URL(db.url);
    proxy = await startTcpProxy(Number(target.port));
    target.port = String(proxy.port);
    server = await startTestServer({ DATABASE_URL: target.toString() });
    mqttUrl = `mqtt://127.0.0.1:${server.mqttPort}`;
    token = await enrollmentToken(server.httpUrl, server.adminHeaders, 10);
    store = new DeploymentsStore(server.sql);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await Promise.all(devices.map((d) => d.stop()));
    await server?.stop();
    await proxy?.close();
    await db?.drop();
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  /** A device played by a raw MQTT.js client, with a deploy command received. */
  async function deviceWithExecution(version: string): Promise<{ device: TestDevice; client: MqttClient; deploymentId: string; executionId: string }> {
    const device = await makeDevice();
    expect((await register(server.httpUrl, device, { enrollmentToken: token })).body.status).toBe('accepted');
    const client = await connectDevice(mqttUrl, device, { clean: false });
    clients.push(client);
    await client.subscribeAsync(cmdTopic(device.id), { qos: 1 });
    const command = nextCommand(client);
    const deploymentId = await deployTo(server.httpUrl, server.adminHeaders, device.id, version);
    return { device, client, deploymentId, executionId: (await command).executionId };
  }

  const waitFailing = () => expect.poll(() => server.services.events.state().failing, { timeout: 20_000 }).toBe(true);

  it('changes nothing when the same event is stored twice', async () => {
    const { device, client, deploymentId, executionId } = await deviceWithExecution('2.0.0');
    for (const state of [...STEPS, 'succeeded' as const]) await client.publishAsync(eventsTopic(device.id), event(executionId, state), { qos: 1 });
    const snapshot = async () => ({
      executions: await store.executions(server.sql, deploymentId, 10),
      deployment: (await api('GET', `${server.httpUrl}/api/v1/deployments/${deploymentId}`, server.adminHeaders)).body,
      device: (await api('GET', `${server.httpUrl}/api/v1/devices/${device.id}`, server.adminHeaders)).body,
    });
    await expect.poll(async () => (await snapshot()).deployment.status).toBe('completed');
    const first = await snapshot();
    expect(first.executions.map((e) => e.state)).toEqual(['succeeded']);

    // The device did not see the PUBACK and sends the same event again (PUBACK awaited: it is stored).
    await client.publishAsync(eventsTopic(device.id), event(executionId, 'succeeded'), { qos: 1, dup: true });
    expect(await snapshot()).toEqual(first);
  });

  it('sends no PUBACK while the database is away, and sends it once the event is stored', async () => {
    const { device, client, deploymentId, executionId } = await deviceWithExecution('3.0.0');
    await proxy.cut();
    let acked = false;
    const seen = brokerEvent(server.broker, 'device:event');
    const publishing = client.publishAsync(eventsTopic(device.id), event(executionId, 'received'), { qos: 1 }).then(() => {
      acked = true;
    });
    await seen;
    await waitFailing();
    expect((await fetch(`${server.httpUrl}/readyz`)).status).toBe(503);
    expect(acked).toBe(false);

    await proxy.restore();
    await publishing;
    expect((await store.executions(server.sql, deploymentId, 10)).map((e) => e.state)).toEqual(['received']);
  });

  it("keeps an agent's event in its outbox until the PUBACK, which follows the commit", async () => {
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-outbox-ack-'));
    dirs.push(stateDir);
    const commands: Command[] = [];
    let received!: () => void;
    const got = new Promise<void>((resolve) => (received = resolve));
    const handler: CommandHandler = {
      async handle(command) {
        commands.push(command);
        received();
      },
    };
    const agent = new Device({
      server: server.httpUrl,
      stateDir,
      enrollToken: token,
      keyType: 'p256',
      telemetryS: 3600,
      keepaliveS: 60,
      version: 'test',
      log: pino({ level: 'silent' }),
      commands: handler,
    });
    devices.push(agent);
    const connected = new Promise((resolve) => agent.once('connected', resolve));
    await agent.start();
    await connected;
    const deploymentId = await deployTo(server.httpUrl, server.adminHeaders, agent.deviceId!, '4.0.0');
    await got;
    const executionId = commands[0]!.executionId;

    await proxy.cut();
    const seen = brokerEvent(server.broker, 'device:event');
    await agent.report({ executionId, state: 'received', ts: Date.now() });
    await seen;
    await waitFailing();
    expect(agent.pendingReports).toBe(1);

    const delivered = new Promise((resolve) => agent.once('delivered', resolve));
    await proxy.restore();
    await delivered;
    expect(agent.pendingReports).toBe(0);
    expect((await store.executions(server.sql, deploymentId, 10)).map((e) => e.state)).toEqual(['received']);
  });
});
