import { cmdTopic, eventsTopic, type Command, type EncodedCommand, type ExecutionState } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrchestratorMetrics } from '../metrics.js';
import { DeploymentsStore } from '../store/deployments.pg.js';
import type { DeviceLink } from './device-link.js';
import { Orchestrator } from './orchestrator.js';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { connectDevice, metric } from '../test-support/mqtt.js';

/** A hand-written device link: records the commands it is given (as a device reads them), and never hears from devices. */
class RecordingLink extends EventEmitter implements DeviceLink {
  constructor(private readonly published: Command[]) {
    super();
  }
  async publishEncoded(_deviceId: string, command: EncodedCommand): Promise<void> {
    this.published.push(JSON.parse(command.payload.toString()) as Command);
  }
}
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/** A device played by a test: a real MQTT.js client that reports what the test says. */
interface Sim {
  device: TestDevice;
  client: MqttClient;
  commands: Command[];
  /** Commands handed out by next() so far. */
  taken: number;
  next(): Promise<Command>;
  report(executionId: string, state: ExecutionState, error?: string): Promise<void>;
}

describe('orchestrator rules against real PostgreSQL and MQTT', () => {
  let server: TestServer;
  let mqttUrl: string;
  let token: string;
  const sims: Sim[] = [];

  async function sim(): Promise<Sim> {
    const device = await makeDevice();
    expect((await register(server.httpUrl, device, { enrollmentToken: token })).body.status).toBe('accepted');
    const client = await connectDevice(mqttUrl, device, { clean: false });
    await client.subscribeAsync(cmdTopic(device.id), { qos: 1 });
    const s: Sim = {
      device,
      client,
      commands: [],
      taken: 0,
      // Commands are taken in order, also one that arrived before next() was called.
      async next() {
        while (s.commands.length <= s.taken) await new Promise((resolve) => client.once('message', resolve));
        return s.commands[s.taken++]!;
      },
      async report(executionId, state, error) {
        await client.publishAsync(eventsTopic(device.id), JSON.stringify({ executionId, state, ts: Date.now(), ...(error ? { error } : {}) }), { qos: 1 });
      },
    };
    client.on('message', (_t, payload) => s.commands.push(JSON.parse(payload.toString()) as Command));
    sims.push(s);
    return s;
  }

  async function bundle(version: string): Promise<string> {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ name: 'sim', version }), headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    return ((await res.json()) as { id: string }).id;
  }

  const deploy = async (body: object): Promise<string> => {
    const res = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, body);
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  /** The next command any of `fleet` gets, and which sim got it. */
  async function nextOfAny(fleet: Sim[]): Promise<{ s: Sim; c: Command }> {
    for (;;) {
      const s = fleet.find((f) => f.commands.length > f.taken);
      if (s) return { s, c: s.commands[s.taken++]! };
      await Promise.race(fleet.map((f) => new Promise((resolve) => f.client.once('message', resolve))));
    }
  }

  const show = async (id: string): Promise<any> => (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}`, server.adminHeaders)).body;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_ORCHESTRATOR_TICK_MS: '100' });
    mqttUrl = `mqtt://127.0.0.1:${server.mqttPort}`;
    token = await enrollmentToken(server.httpUrl, server.adminHeaders, 20);
  });
  afterAll(async () => {
    await Promise.all(sims.map((s) => s.client.endAsync(true)));
    await server?.stop();
  });

  it('keeps at most maxConcurrent executions between sent and verifying', async () => {
    const fleet = await Promise.all([sim(), sim(), sim()]);
    const bundleId = await bundle('1.0.0');
    const id = await deploy({ bundleId, target: { deviceIds: fleet.map((s) => s.device.id) }, rollout: { maxConcurrent: 1 } });
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      const cmd = await nextOfAny(fleet);
      expect(cmd.c.type).toBe('deploy');
      order.push(cmd.s.device.id);
      const d = await show(id);
      expect(d.counts.sent + d.counts.received + d.counts.downloading + d.counts.installing + d.counts.verifying).toBe(1);
      for (const state of ['received', 'downloading', 'installing', 'verifying', 'succeeded'] as const) await cmd.s.report(cmd.c.executionId, state);
    }
    expect(new Set(order).size).toBe(3);
    await expect.poll(async () => (await show(id)).status).toBe('completed');
  });

  it('refuses and counts events for unknown executions and impossible transitions', async () => {
    const s = await sim();
    const bundleId = await bundle('2.0.0');
    const id = await deploy({ bundleId, target: { deviceIds: [s.device.id] } });
    const cmd = await s.next();
    await s.report(cmd.executionId, 'succeeded');
    await expect.poll(async () => (await show(id)).status).toBe('completed');

    const unknownBefore = await metric(server.httpUrl, 'kernex_execution_events_refused_total', { reason: 'unknown_execution' });
    const transitionBefore = await metric(server.httpUrl, 'kernex_execution_events_refused_total', { reason: 'transition' });
    await s.report('00000000-0000-4000-8000-000000000000', 'received');
    await s.report(cmd.executionId, 'downloading');
    await expect.poll(() => metric(server.httpUrl, 'kernex_execution_events_refused_total', { reason: 'unknown_execution' })).toBe(unknownBefore + 1);
    await expect.poll(() => metric(server.httpUrl, 'kernex_execution_events_refused_total', { reason: 'transition' })).toBe(transitionBefore + 1);
    expect((await show(id)).counts.succeeded).toBe(1);
  });

  it('times out an execution with no progress for timeoutS', async () => {
    const s = await sim();
    const id = await deploy({ bundleId: await bundle('3.0.0'), target: { deviceIds: [s.device.id] }, timeoutS: 1 });
    const cmd = await s.next();
    await s.report(cmd.executionId, 'received');
    await expect.poll(async () => (await show(id)).status, { timeout: 10_000 }).toBe('completed');
    const items = (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}/executions`, server.adminHeaders)).body.items;
    expect(items).toEqual([expect.objectContaining({ deviceId: s.device.id, state: 'timed_out', error: 'no progress for 1 s' })]);
  });

  it('lets a device download only the bundle of its live execution, and keeps that bundle from deletion', async () => {
    const [mine, other] = await Promise.all([sim(), sim()]);
    const bundleId = await bundle('4.0.0');
    const id = await deploy({ bundleId, target: { deviceIds: [mine.device.id] } });
    const cmd = await mine.next();
    expect(cmd.type === 'deploy' && cmd.bundle.url).toBe(`${server.httpUrl}/api/v1/bundles/${bundleId}/blob`);
    const fetchAs = async (d: TestDevice): Promise<number> =>
      (await fetch(`${server.httpUrl}/api/v1/bundles/${bundleId}/blob`, { headers: { authorization: `Bearer ${await d.jwt('kernex-http')}` } })).status;
    expect(await fetchAs(mine.device)).toBe(200);
    expect(await fetchAs(other.device)).toBe(404);
    expect((await api('DELETE', `${server.httpUrl}/api/v1/bundles/${bundleId}`, server.adminHeaders)).status).toBe(409);

    await mine.report(cmd.executionId, 'failed', 'disk full');
    await expect.poll(async () => (await show(id)).status).toBe('completed');
    expect(await fetchAs(mine.device)).toBe(404);
    expect((await api('DELETE', `${server.httpUrl}/api/v1/bundles/${bundleId}`, server.adminHeaders)).status).toBe(204);
    expect((await show(id)).bundleId).toBeNull();
  });
});

/**
 * Orchestrators made by the test race on one database. They get a server of their own whose
 * orchestrator is stopped from the start, so no other test shares a server without one.
 */
describe('orchestrators the test drives, on a server of their own', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer({ KERNEX_ORCHESTRATOR_TICK_MS: '100' });
    await server.services.orchestrator.stop();
    token = await enrollmentToken(server.httpUrl, server.adminHeaders, 40);
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function bundle(version: string): Promise<string> {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ name: 'sim', version }), headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    return ((await res.json()) as { id: string }).id;
  }
  const deploy = async (body: object): Promise<string> => {
    const res = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, body);
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const show = async (id: string): Promise<any> => (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}`, server.adminHeaders)).body;

  it('dispatches each execution once when two orchestrators tick the same database at once', async () => {
    // Two servers of one installation: two orchestrators race (this server's own is stopped).
    const devices = await Promise.all(Array.from({ length: 6 }, () => makeDevice()));
    for (const d of devices) expect((await register(server.httpUrl, d, { enrollmentToken: token })).body.status).toBe('accepted');
    const published: Command[] = [];
    const link = (): DeviceLink => new RecordingLink(published);
    const make = (): Orchestrator =>
      new Orchestrator({ store: new DeploymentsStore(server.sql), link: link(), log: pino({ level: 'silent' }), metrics: createOrchestratorMetrics(new Registry(), async () => undefined), bundleUrl: (id) => `/b/${id}` });
    const [one, two] = [make(), make()];
    const id = await deploy({ bundleId: await bundle('5.0.0'), target: { deviceIds: devices.map((d) => d.id) } });
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? one : two).tick()));
    const executions = new Set(published.map((c) => c.executionId));
    expect(published).toHaveLength(6);
    expect(executions.size).toBe(6);
    expect((await show(id)).counts.sent).toBe(6);
  });

  it('dispatches a deployment larger than one batch in a single kick, each execution once', async () => {
    const devices = await Promise.all(Array.from({ length: 5 }, () => makeDevice()));
    for (const d of devices) expect((await register(server.httpUrl, d, { enrollmentToken: token })).body.status).toBe('accepted');
    const published: Command[] = [];
    const link = new RecordingLink(published);
    const id = await deploy({ bundleId: await bundle('6.0.0'), target: { deviceIds: devices.map((d) => d.id) } });
    // Batches of 2 and no timer tick within the test: only the kick's own repeats can reach all 5.
    const orchestrator = new Orchestrator({ store: new DeploymentsStore(server.sql), link, log: pino({ level: 'silent' }), metrics: createOrchestratorMetrics(new Registry(), async () => undefined), bundleUrl: (b) => `/b/${b}`, tickMs: 3_600_000, dispatchBatch: 2 });
    orchestrator.start();
    await orchestrator.settled();
    await orchestrator.stop();
    expect(published).toHaveLength(5);
    expect(new Set(published.map((c) => c.executionId)).size).toBe(5);
    expect((await show(id)).counts.sent).toBe(5);
  });

  it('doubles the batch after each full one, up to four times the first, and starts the next kick small again', async () => {
    const devices = await Promise.all(Array.from({ length: 13 }, () => makeDevice()));
    for (const d of devices) expect((await register(server.httpUrl, d, { enrollmentToken: token })).body.status).toBe('accepted');
    const published: Command[] = [];
    const asked: Array<{ deploymentId: string; limit: number }> = [];
    const askedFor = (id: string): number[] => asked.filter((a) => a.deploymentId === id).map((a) => a.limit);
    // The store as it is, but noting how many executions each tick asks to dispatch (earlier tests' deployments are still running).
    const store = new (class extends DeploymentsStore {
      override dispatch(...args: Parameters<DeploymentsStore['dispatch']>): ReturnType<DeploymentsStore['dispatch']> {
        asked.push({ deploymentId: args[1], limit: args[3] });
        return super.dispatch(...args);
      }
    })(server.sql);
    const orchestrator = new Orchestrator({ store, link: new RecordingLink(published), log: pino({ level: 'silent' }), metrics: createOrchestratorMetrics(new Registry(), async () => undefined), bundleUrl: (b) => `/b/${b}`, tickMs: 3_600_000, dispatchBatch: 1 });
    const firstBundle = await bundle('6.1.0');
    const first = await deploy({ bundleId: firstBundle, target: { deviceIds: devices.map((d) => d.id) } });
    const commandsOf = (bundleId: string): Command[] => published.filter((c) => c.type === 'deploy' && c.bundle.id === bundleId);
    orchestrator.start();
    await orchestrator.settled();
    // 1 + 2 + 4 + 4 + 2 of 4: four times the first at most, and the fifth batch is not full, so the kick ends there.
    expect(askedFor(first)).toEqual([1, 2, 4, 4, 4]);
    expect(new Set(commandsOf(firstBundle).map((c) => c.executionId)).size).toBe(13);
    expect((await show(first)).counts.sent).toBe(13);

    // The next kick's first batch is small again.
    const secondBundle = await bundle('6.2.0');
    const second = await deploy({ bundleId: secondBundle, target: { deviceIds: devices.slice(0, 3).map((d) => d.id) } });
    orchestrator.kick();
    await orchestrator.settled();
    await orchestrator.stop();
    expect(askedFor(second)).toEqual([1, 2, 4]);
    expect(commandsOf(secondBundle)).toHaveLength(3);
  });

  /** Refused commands by type, as the counter says. */
  const refusedBy = async (metrics: ReturnType<typeof createOrchestratorMetrics>): Promise<Record<string, number>> =>
    Object.fromEntries((await metrics.refused.get()).values.map((v) => [v.labels.type, v.value]));

  it('refuses and counts the deploy commands of a batch whose shared part fails the command schema, sending none', async () => {
    const devices = await Promise.all(Array.from({ length: 3 }, () => makeDevice()));
    for (const d of devices) expect((await register(server.httpUrl, d, { enrollmentToken: token })).body.status).toBe('accepted');
    const published: Command[] = [];
    const metrics = createOrchestratorMetrics(new Registry(), async () => undefined);
    // A bundle URL the schema refuses (empty): every command of the batch shares it.
    const orchestrator = new Orchestrator({ store: new DeploymentsStore(server.sql), link: new RecordingLink(published), log: pino({ level: 'silent' }), metrics, bundleUrl: () => '' });
    await deploy({ bundleId: await bundle('7.0.0'), target: { deviceIds: devices.map((d) => d.id) } });
    await orchestrator.tick();
    expect(published).toHaveLength(0);
    expect(await refusedBy(metrics)).toEqual({ deploy: 3 });
  });

  it('refuses and counts only the deploy command that alone fails the command schema (its delta), sending the others', async () => {
    const devices = await Promise.all(Array.from({ length: 3 }, () => makeDevice()));
    for (const d of devices) expect((await register(server.httpUrl, d, { enrollmentToken: token })).body.status).toBe('accepted');
    const published: Command[] = [];
    const metrics = createOrchestratorMetrics(new Registry(), async () => undefined);
    const badDelta = { from: '1.0.0', url: '/d', sha256: 'not a sha256', size: 1, index: '/i', indexSignature: 's' };
    const orchestrator = new Orchestrator({
      store: new DeploymentsStore(server.sql),
      link: new RecordingLink(published),
      log: pino({ level: 'silent' }),
      metrics,
      bundleUrl: (b) => `/b/${b}`,
      deltaRefs: async () => new Map([[devices[0]!.id, badDelta]]),
    });
    await deploy({ bundleId: await bundle('8.0.0'), target: { deviceIds: devices.map((d) => d.id) } });
    await orchestrator.tick();
    expect(published).toHaveLength(2);
    expect(published.every((c) => c.type === 'deploy' && c.bundle.url.startsWith('/b/') && !c.bundle.delta)).toBe(true);
    expect(await refusedBy(metrics)).toEqual({ deploy: 1 });
  });
});
