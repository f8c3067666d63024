import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deviceIdFromPublicKey, parseTopic } from '@kernex/shared';
import { api } from './test-support/devices.js';
import { until } from './test-support/fleet.js';
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
  /** The device id of the key the agent made in `dir` (the file appears whole: written then renamed). */
  const deviceIdIn = async (dir: string): Promise<string> => {
    const file = path.join(dir, 'device.key');
    await until(`a key in ${dir}`, () => fs.access(file).then(() => true, () => false));
    return deviceIdFromPublicKey(createPrivateKey(await fs.readFile(file, 'utf8')));
  };
  /** Resolves once the server shows the device with these fields (status, online). */
  const shows = (id: string, want: Record<string, unknown>): Promise<void> =>
    expect.poll(async () => device(id), { timeout: 30_000 }).toMatchObject(want);
  /** MQTT packets and connections the broker refused, all reasons. */
  const refusedTotal = async (): Promise<number> =>
    (await (await fetch(`${server.httpUrl}/metrics`)).text())
      .split('\n')
      .filter((l) => l.startsWith('kernex_mqtt_refused_total{'))
      .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
  /** Execution ids of the events in the agent's outbox journal, in order. */
  const journalled = async (dir: string): Promise<string[]> =>
    (await fs.readFile(path.join(dir, 'outbox.jsonl'), 'utf8').catch(() => ''))
      .split('\n')
      .flatMap((l) => {
        try {
          const e = JSON.parse(l) as { s?: number; t?: string; p?: { executionId?: string } };
          return e.s !== undefined && e.t?.endsWith('/events') && e.p?.executionId ? [e.p.executionId] : [];
        } catch {
          return [];
        }
      });

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
    const id = await deviceIdIn(dir);
    await shows(id, { status: 'accepted', online: true });
    const key = await fs.readFile(path.join(dir, 'device.key'), 'utf8');

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

    await expect.poll(async () => (await device(id)).online, { timeout: 15_000 }).toBe(false);

    // A power cut while identity.json was being replaced cannot happen (atomic rename), but a
    // damaged file must not stop the device: it registers again with the same key.
    const identityFile = path.join(dir, 'identity.json');
    const text = await fs.readFile(identityFile, 'utf8');
    await fs.writeFile(identityFile, text.slice(0, text.length / 2));

    // Same state directory, no token: the same device, still accepted.
    const second = start({ KERNEX_STATE_DIR: dir });
    await shows(id, { status: 'accepted', online: true });
    // It registered again (identity.json is whole once more) with the key it had.
    expect(JSON.parse(await fs.readFile(identityFile, 'utf8'))).toBeTypeOf('object');
    expect(await fs.readFile(path.join(dir, 'device.key'), 'utf8')).toBe(key);
    expect(second.proc.exitCode).toBeNull();
  });

  it('delivers events produced while the link is cut, in order, after it comes back', async () => {
    const proxy: TcpProxy = await startTcpProxy(server.mqttPort);
    try {
      const dir = await stateDir();
      const a = start({ KERNEX_STATE_DIR: dir, KERNEX_ENROLL_TOKEN: await enrollToken(), KERNEX_MQTT_URL: `mqtt://127.0.0.1:${proxy.port}` });
      const id = await deviceIdIn(dir);
      await shows(id, { online: true });
      await proxy.cut();
      await shows(id, { online: false });
      for (let n = 1; n <= 5; n++) {
        a.proc.kill('SIGUSR2');
        await expect.poll(() => journalled(dir)).toHaveLength(n);
      }
      const expected = await journalled(dir);
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
      const id = await deviceIdIn(dir);
      await shows(id, { online: true });
      await proxy.cut();
      await shows(id, { online: false });
      for (let n = 1; n <= 3; n++) {
        a.proc.kill('SIGUSR2');
        await expect.poll(() => journalled(dir)).toHaveLength(n);
      }
      const queued = await journalled(dir);
      // A power cut: no orderly stop, and a half-written line at the end of the journal.
      await a.kill('SIGKILL');
      await fs.appendFile(path.join(dir, 'outbox.jsonl'), '{"s":99,"t":"kx/');
      await proxy.restore();

      start(env);
      await expect.poll(() => events.get(id) ?? [], { timeout: 20_000 }).toHaveLength(3);
      expect(events.get(id)).toEqual(queued);
    } finally {
      await proxy.close();
    }
  });

  it('shows the device offline when the agent dies without a word', async () => {
    const dir = await stateDir();
    const a = start({ KERNEX_STATE_DIR: dir, KERNEX_ENROLL_TOKEN: await enrollToken() });
    const id = await deviceIdIn(dir);
    await expect.poll(async () => (await device(id)).online, { timeout: 15_000 }).toBe(true);
    await a.kill('SIGKILL');
    await expect.poll(async () => (await device(id)).online, { timeout: 15_000 }).toBe(false);
  });

  it('rides out a broker that refuses it for a while, and reconnects once accepted again', async () => {
    const dir = await stateDir();
    const a = start({ KERNEX_STATE_DIR: dir, KERNEX_ENROLL_TOKEN: await enrollToken() });
    const id = await deviceIdIn(dir);
    await shows(id, { online: true });
    const refused = await refusedTotal();
    expect((await api('POST', `${server.httpUrl}/api/v1/devices/${id}/reject`, server.adminHeaders)).status).toBe(200);
    await shows(id, { status: 'rejected', online: false });
    // It keeps knocking (refused CONNECTs counted) and does not exit.
    await expect.poll(refusedTotal, { timeout: 30_000 }).toBeGreaterThan(refused);
    expect(a.proc.exitCode).toBeNull();

    expect((await api('POST', `${server.httpUrl}/api/v1/devices/${id}/accept`, server.adminHeaders)).status).toBe(200);
    await expect.poll(async () => (await device(id)).online, { timeout: 15_000 }).toBe(true);
  });

  it('waits while pending and connects once an operator accepts it', async () => {
    const dir = await stateDir();
    start({ KERNEX_STATE_DIR: dir });
    const id = await deviceIdIn(dir);
    await shows(id, { status: 'pending', online: false });
    const accepted = await api('POST', `${server.httpUrl}/api/v1/devices/${id}/accept`, server.adminHeaders);
    expect(accepted.status).toBe(200);
    await shows(id, { status: 'accepted', online: true });
  });

  it('registers as pending when its enrollment token is spent, instead of looping on it', async () => {
    const token = await enrollToken();
    const [one, two] = [await stateDir(), await stateDir()];
    start({ KERNEX_STATE_DIR: one, KERNEX_ENROLL_TOKEN: token });
    await shows(await deviceIdIn(one), { status: 'accepted' });
    const second = start({ KERNEX_STATE_DIR: two, KERNEX_ENROLL_TOKEN: token });
    await shows(await deviceIdIn(two), { status: 'pending' });
    expect(second.proc.exitCode).toBeNull();
  });

  it('makes an RSA-4096 key by default', async () => {
    const dir = await stateDir();
    const a = start({ KERNEX_STATE_DIR: dir, KERNEX_ENROLL_TOKEN: await enrollToken(), KERNEX_KEY_TYPE: '' });
    await shows(await deviceIdIn(dir), { status: 'accepted', online: true });
    expect(a.proc.exitCode).toBeNull();
    const pem = await fs.readFile(path.join(dir, 'device.key'), 'utf8');
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
