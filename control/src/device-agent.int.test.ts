import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseTopic } from '@kernex/shared';
import { api } from './test-support/devices.js';
import { spawnAgent, type AgentProcess } from './test-support/spawn-agent.js';
import { startTcpProxy, type TcpProxy } from './test-support/tcp-proxy.js';
import { startTestServer, type TestServer } from './test-support/test-server.js';

/**
 * The real `kernex-agent` process (built dist) against a real in-process
 * server: registration, the MQTT session, telemetry and the outbox.
 */
describe('kernex-agent against a real server', () => {
  let server: TestServer;
  let viewer: Record<string, string>;
  const agents: AgentProcess[] = [];
  const dirs: string[] = [];
  /** Execution ids of events the broker accepted, per device, in arrival order. */
  const events = new Map<string, string[]>();

  const stateDir = async (): Promise<string> => {
    const d = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-agent-'));
    dirs.push(d);
    return path.join(d, 'state');
  };
  const enrollToken = async (): Promise<string> =>
    (await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 1, expiresInS: 600 })).body.token as string;
  const start = (env: Record<string, string>): AgentProcess => {
    const a = spawnAgent({ KERNEX_SERVER: server.httpUrl, KERNEX_KEY_TYPE: 'p256', KERNEX_RECONNECT_MAX_S: '2', ...env });
    agents.push(a);
    return a;
  };
  const device = async (id: string) => (await api('GET', `${server.httpUrl}/api/v1/devices/${id}`, viewer)).body;

  beforeAll(async () => {
    server = await startTestServer();
    viewer = { authorization: `Bearer ${(await server.services.apiKeys.create('viewer', 'viewer')).key}` };
    server.broker.aedes.on('publish', (packet, client) => {
      const topic = parseTopic(packet.topic);
      if (!client || topic?.channel !== 'events') return;
      const list = events.get(topic.deviceId) ?? [];
      list.push((JSON.parse(packet.payload.toString()) as { executionId: string }).executionId);
      events.set(topic.deviceId, list);
    });
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.kill('SIGKILL')));
  });
  afterAll(async () => {
    await server?.stop();
    await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
  });

  it('enrolls, connects, reports telemetry, and keeps its identity across a restart', async () => {
    const dir = await stateDir();
    const first = start({ KERNEX_STATE_DIR: dir, KERNEX_ENROLL_TOKEN: await enrollToken(), KERNEX_TELEMETRY_S: '1' });
    const registered = await first.waitFor('registered', { status: 'accepted' });
    const id = registered.deviceId as string;
    await first.waitFor('connected');
    await first.waitFor('telemetry sent');

    // The key and state are the device's alone.
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);
    expect((await fs.stat(path.join(dir, 'device.key'))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(dir, 'identity.json'))).mode & 0o777).toBe(0o600);

    await expect.poll(async () => (await device(id)).telemetryAt, { timeout: 15_000 }).not.toBeNull();
    const shown = await device(id);
    expect(shown.telemetry).toMatchObject({ v: '0.1.0', mem: [expect.any(Number), expect.any(Number)], up: expect.any(Number) });
    const history = await api('GET', `${server.httpUrl}/api/v1/devices/${id}/telemetry?limit=1`, viewer);
    expect(history.body.items[0].telemetry).toMatchObject({ cpu: expect.any(Number), load: expect.any(Array) });

    // SIGTERM: offline status, orderly exit 0.
    expect(await first.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(first.logs.map((l) => l.msg)).toContain('stopped');

    await expect.poll(async () => (await device(id)).online, { timeout: 15_000 }).toBe(false);

    // A power cut while identity.json was being replaced cannot happen (atomic rename), but a
    // damaged file must not stop the device: it registers again with the same key.
    const identityFile = path.join(dir, 'identity.json');
    const text = await fs.readFile(identityFile, 'utf8');
    await fs.writeFile(identityFile, text.slice(0, text.length / 2));

    // Same state directory, no token: the same device, still accepted.
    const second = start({ KERNEX_STATE_DIR: dir });
    await second.waitFor('identity file unreadable; registering again');
    const again = await second.waitFor('registered');
    expect(again).toMatchObject({ deviceId: id, status: 'accepted' });
    expect(second.logs.map((l) => l.msg)).not.toContain('device key created');
    await second.waitFor('connected');
  });

  it('delivers events produced while the link is cut, in order, after it comes back', async () => {
    const proxy: TcpProxy = await startTcpProxy(server.mqttPort);
    try {
      const a = start({ KERNEX_STATE_DIR: await stateDir(), KERNEX_ENROLL_TOKEN: await enrollToken(), KERNEX_MQTT_URL: `mqtt://127.0.0.1:${proxy.port}` });
      const id = (await a.waitFor('registered')).deviceId as string;
      await a.waitFor('connected');
      await proxy.cut();
      await a.waitFor('disconnected');
      const expected: string[] = [];
      for (let n = 1; n <= 5; n++) {
        const since = a.logs.length;
        a.proc.kill('SIGUSR2');
        const queued = await a.waitFor('event queued', { connected: false }, since);
        expected.push(queued.executionId as string);
      }
      expect(events.get(id) ?? []).toEqual([]);
      await proxy.restore();
      await expect.poll(() => events.get(id) ?? [], { timeout: 20_000 }).toHaveLength(5);
      expect(events.get(id)).toEqual(expected);
    } finally {
      await proxy.close();
    }
  });

  it('keeps undelivered events across an agent restart and delivers them once connected', async () => {
    const proxy = await startTcpProxy(server.mqttPort);
    try {
      const dir = await stateDir();
      const env = { KERNEX_STATE_DIR: dir, KERNEX_MQTT_URL: `mqtt://127.0.0.1:${proxy.port}` };
      const a = start({ ...env, KERNEX_ENROLL_TOKEN: await enrollToken() });
      const id = (await a.waitFor('registered')).deviceId as string;
      await a.waitFor('connected');
      await proxy.cut();
      await a.waitFor('disconnected');
      const queued: string[] = [];
      for (let n = 1; n <= 3; n++) {
        const since = a.logs.length;
        a.proc.kill('SIGUSR2');
        queued.push((await a.waitFor('event queued', {}, since)).executionId as string);
      }
      // A power cut: no orderly stop, and a half-written line at the end of the journal.
      await a.kill('SIGKILL');
      await fs.appendFile(path.join(dir, 'outbox.jsonl'), '{"s":99,"t":"kx/');
      await proxy.restore();

      const b = start(env);
      await b.waitFor('outbox: ignoring a truncated last line (interrupted write)');
      await b.waitFor('connected');
      await expect.poll(() => events.get(id) ?? [], { timeout: 20_000 }).toHaveLength(3);
      expect(events.get(id)).toEqual(queued);
    } finally {
      await proxy.close();
    }
  });

  it('shows the device offline when the agent dies without a word', async () => {
    const a = start({ KERNEX_STATE_DIR: await stateDir(), KERNEX_ENROLL_TOKEN: await enrollToken() });
    const id = (await a.waitFor('registered')).deviceId as string;
    await a.waitFor('connected');
    await expect.poll(async () => (await device(id)).online, { timeout: 15_000 }).toBe(true);
    await a.kill('SIGKILL');
    await expect.poll(async () => (await device(id)).online, { timeout: 15_000 }).toBe(false);
  });

  it('rides out a broker that refuses it for a while, and reconnects once accepted again', async () => {
    const a = start({ KERNEX_STATE_DIR: await stateDir(), KERNEX_ENROLL_TOKEN: await enrollToken() });
    const id = (await a.waitFor('registered')).deviceId as string;
    await a.waitFor('connected');
    const mark = a.logs.length;
    expect((await api('POST', `${server.httpUrl}/api/v1/devices/${id}/reject`, server.adminHeaders)).status).toBe(200);
    await a.waitFor('disconnected', {}, mark);
    await a.waitFor('broker refused the device; will register again and retry', {}, mark);
    await a.waitFor('registration failed; retrying', { kind: 'refused' }, mark);
    expect(a.proc.exitCode).toBeNull();

    const back = a.logs.length;
    expect((await api('POST', `${server.httpUrl}/api/v1/devices/${id}/accept`, server.adminHeaders)).status).toBe(200);
    await a.waitFor('connected', {}, back);
    await expect.poll(async () => (await device(id)).online, { timeout: 15_000 }).toBe(true);
  });

  it('waits while pending and connects once an operator accepts it', async () => {
    const a = start({ KERNEX_STATE_DIR: await stateDir() });
    const pending = await a.waitFor('registered; waiting for an operator to accept the device');
    const id = pending.deviceId as string;
    expect(pending.status).toBe('pending');
    const accepted = await api('POST', `${server.httpUrl}/api/v1/devices/${id}/accept`, server.adminHeaders);
    expect(accepted.status).toBe(200);
    await a.waitFor('registered', { status: 'accepted' });
    await a.waitFor('connected');
  });

  it('registers as pending when its enrollment token is spent, instead of looping on it', async () => {
    const token = await enrollToken();
    const first = start({ KERNEX_STATE_DIR: await stateDir(), KERNEX_ENROLL_TOKEN: token });
    await first.waitFor('registered', { status: 'accepted' });
    const second = start({ KERNEX_STATE_DIR: await stateDir(), KERNEX_ENROLL_TOKEN: token });
    await second.waitFor('enrollment token refused; registering without it (the device waits as pending)');
    const pending = await second.waitFor('registered; waiting for an operator to accept the device');
    expect((await device(pending.deviceId as string)).status).toBe('pending');
  });

  it('makes an RSA-4096 key by default', async () => {
    const dir = await stateDir();
    const a = start({ KERNEX_STATE_DIR: dir, KERNEX_ENROLL_TOKEN: await enrollToken(), KERNEX_KEY_TYPE: '' });
    const created = await a.waitFor('device key created');
    expect(created.keyType).toBe('rsa');
    await a.waitFor('connected');
    const pem = await fs.readFile(path.join(dir, 'device.key'), 'utf8');
    const { createPrivateKey } = await import('node:crypto');
    expect(createPrivateKey(pem).asymmetricKeyDetails?.modulusLength).toBe(4096);
  });

  it('refuses a bad configuration with one line per problem and exit 1', async () => {
    const a = spawnAgent({ KERNEX_SERVER: 'not a url', KERNEX_TELEMETRY_S: 'soon' });
    agents.push(a);
    expect((await a.exited).code).toBe(1);
    expect(a.stderr).toMatch(/KERNEX_SERVER \(--server\) is not a valid URL/);
    expect(a.stderr).toMatch(/KERNEX_TELEMETRY_S \(--telemetry-s\)/);
  });
});
