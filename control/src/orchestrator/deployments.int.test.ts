import { createPublicKey } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, deviceFromKeys } from '../test-support/devices.js';
import { connectDevice, metric } from '../test-support/mqtt.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

const publicPem = (privatePem: string): string => createPublicKey(privatePem).export({ type: 'spki', format: 'pem' }).toString();

/**
 * End to end: real kernex-agent processes against a real server (PostgreSQL,
 * Aedes, HTTP), through upload, deployment, download, install, health check,
 * rollback, cancel and reconnect.
 */
describe('deployments end to end', () => {
  let server: TestServer;
  const agents: FleetAgent[] = [];
  let a: FleetAgent;
  let b: FleetAgent;

  async function upload(archive: Buffer): Promise<string> {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    const body = (await res.json()) as { id: string };
    expect(res.status).toBe(201);
    return body.id;
  }

  async function deploy(bundleId: string, deviceIds: string[], rollout?: object): Promise<string> {
    const res = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds }, ...(rollout ? { rollout } : {}) });
    expect(res.status).toBe(201);
    expect(res.body.status).toBe('running');
    return res.body.id as string;
  }

  const show = async (id: string): Promise<any> => (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}`, server.adminHeaders)).body;
  const executions = async (id: string): Promise<Array<{ deviceId: string; state: string; error?: string }>> =>
    (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}/executions`, server.adminHeaders)).body.items;
  /** Installs `name`@0.1.0 on `on` and waits until it is done: a version of its own for a test to go back to. */
  async function baseline(name: string, on: FleetAgent[]): Promise<void> {
    const id = await deploy(await upload(await makeBundle({ name, version: '0.1.0' })), on.map((x) => x.deviceId));
    await expect.poll(async () => (await show(id)).status, { timeout: 30_000 }).toBe('completed');
    for (const x of on) expect(await x.current(name)).toBe('0.1.0');
  }
  const stateOf = async (id: string, deviceId: string): Promise<string | undefined> => (await executions(id)).find((e) => e.deviceId === deviceId)?.state;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    const token = await enrollmentToken(server.httpUrl, server.adminHeaders, 10);
    [a, b] = await Promise.all([startAgent(server.httpUrl, token), startAgent(server.httpUrl, token)]);
    agents.push(a!, b!);
  });
  afterAll(async () => {
    await Promise.all(agents.map((x) => x.stop().catch(() => {})));
    await server?.stop();
    for (const x of agents) await fs.rm(x.stateDir, { recursive: true, force: true });
  });

  it('deploys a bundle to every target device', async () => {
    const succeededBefore = await metric(server.httpUrl, 'kernex_executions', { state: 'succeeded' });
    const bundleId = await upload(await makeBundle({ version: '1.0.0', healthCheck: '#!/bin/sh\nexit 0\n' }));
    const id = await deploy(bundleId, [a.deviceId, b.deviceId]);
    await expect.poll(async () => (await show(id)).status, { timeout: 30_000 }).toBe('completed');
    const d = await show(id);
    expect(d.counts).toMatchObject({ succeeded: 2, failed: 0, queued: 0 });
    expect(await a.current('app')).toBe('1.0.0');
    expect(await b.current('app')).toBe('1.0.0');
    const device = await api('GET', `${server.httpUrl}/api/v1/devices/${a.deviceId}`, server.adminHeaders);
    expect(device.body.bundles).toMatchObject({ app: '1.0.0' });
    // A device may download the bundle only while its execution is live: now it is over.
    expect(await metric(server.httpUrl, 'kernex_executions', { state: 'succeeded' })).toBe(succeededBefore + 2);
  });

  it('ends rolled_back when the health check fails, and the old version stays current', async () => {
    await baseline('checked', [a]);
    const bundleId = await upload(await makeBundle({ name: 'checked', version: '2.0.0', healthCheck: '#!/bin/sh\necho "port 8080 closed" >&2\nexit 1\n' }));
    const id = await deploy(bundleId, [a.deviceId]);
    await expect.poll(async () => (await show(id)).status, { timeout: 30_000 }).toBe('completed');
    const [e] = await executions(id);
    expect(e).toMatchObject({ deviceId: a.deviceId, state: 'rolled_back' });
    expect(e!.error).toMatch(/health check script 'check.sh' exited with 1: port 8080 closed/);
    expect(await a.current('checked')).toBe('0.1.0');
  });

  it('heals an offline device from PostgreSQL when it connects again with no broker session', async () => {
    await b.stop();
    const bundleId = await upload(await makeBundle({ version: '3.0.0' }));
    const id = await deploy(bundleId, [b.deviceId]);
    await expect.poll(() => stateOf(id, b.deviceId)).toBe('sent');
    // The broker queued the deploy in b's persistent session. A clean-session CONNECT as b
    // (b's own key) discards that session, so only the server's re-send from PostgreSQL on
    // b's next SUBSCRIBE (orchestrator.healDevice) can deliver the command now.
    const key = await fs.readFile(path.join(b.stateDir, 'device.key'), 'utf8');
    const wipe = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, deviceFromKeys({ privateKeyPem: key, publicKeyPem: publicPem(key) }), { clean: true });
    await wipe.endAsync();
    await b.restart();
    await expect.poll(async () => (await show(id)).status, { timeout: 30_000 }).toBe('completed');
    expect(await stateOf(id, b.deviceId)).toBe('succeeded');
    expect(await b.current('app')).toBe('3.0.0');
  });

  it('cancels a deployment: the device told while offline does not install it', async () => {
    const before = await b.current('app');
    await b.stop();
    // The broker's session may hand the deploy over before the cancel: a long install
    // makes sure the cancel lands before it finishes (cancel stops an unfinished install).
    const bundleId = await upload(await makeBundle({ version: '4.0.0', install: '#!/bin/sh\nsleep 30\n' }));
    const id = await deploy(bundleId, [b.deviceId]);
    await expect.poll(() => stateOf(id, b.deviceId)).toBe('sent');
    const cancelled = await api('POST', `${server.httpUrl}/api/v1/deployments/${id}/cancel`, server.adminHeaders);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    expect((await api('POST', `${server.httpUrl}/api/v1/deployments/${id}/cancel`, server.adminHeaders)).status).toBe(409);
    await b.restart();
    await expect.poll(() => stateOf(id, b.deviceId), { timeout: 30_000 }).toBe('cancelled');
    expect(await b.current('app')).toBe(before);
    await expect(fs.access(path.join(b.stateDir, 'bundles', 'app', '4.0.0'))).rejects.toThrow();
  });

  it('aborts a phased rollout past its threshold and rolls back the devices that succeeded', async () => {
    // The first phase (1%) holds the lowest device id; the health check fails on the other.
    const [first, second] = [a, b].sort((x, y) => x.deviceId.localeCompare(y.deviceId)) as [FleetAgent, FleetAgent];
    await baseline('phased', [first, second]);
    await fs.writeFile(path.join(second.stateDir, 'unhealthy'), '');
    const check = '#!/bin/sh\ntest ! -f ../../../unhealthy\n';
    const bundleId = await upload(await makeBundle({ name: 'phased', version: '5.0.0', healthCheck: check }));
    const id = await deploy(bundleId, [first.deviceId, second.deviceId], {
      phases: [{ percent: 1, waitS: 0 }, { percent: 100, waitS: 0 }],
      maxFailurePercent: 10,
    });
    await expect.poll(async () => (await show(id)).status, { timeout: 30_000 }).toBe('aborted');
    await expect.poll(() => stateOf(id, first.deviceId), { timeout: 30_000 }).toBe('rolled_back');
    expect(await stateOf(id, second.deviceId)).toBe('rolled_back');
    expect(await first.current('phased')).toBe('0.1.0');
    expect(await second.current('phased')).toBe('0.1.0');
    expect((await show(id)).reason).toMatch(/1 of 2 executions failed/);
    await fs.rm(path.join(second.stateDir, 'unhealthy'));
  });

  it('refuses phases that are not cumulative percents rising strictly to 100, saying why', async () => {
    const bundleId = await upload(await makeBundle({ version: '6.1.0' }));
    const post = (percents: number[]) =>
      api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, {
        bundleId,
        target: { all: true },
        rollout: { phases: percents.map((percent) => ({ percent, waitS: 0 })) },
      });
    // Shares adding up to 100 (DESIGN v1's reading) are no longer guessed at: 50 then 50 does not rise.
    const shares = await post([50, 50]);
    expect(shares.status).toBe(400);
    expect(shares.body.message).toMatch(/^body\.rollout\.phases\.1\.percent must be more than the phase before it: percents are cumulative/);
    const short = await post([10, 40]);
    expect(short.status).toBe(400);
    expect(short.body.message).toMatch(/^body\.rollout\.phases\.1\.percent must be 100/);
  });

  it('refuses deployments that target nothing or an unknown bundle', async () => {
    const bundleId = await upload(await makeBundle({ version: '6.0.0' }));
    const none = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { tags: ['nobody-has-this'] } });
    expect(none.status).toBe(400);
    expect(none.body.message).toMatch(/matches no accepted device/);
    const unknown = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId: '00000000-0000-4000-8000-000000000000', target: { all: true } });
    expect(unknown.status).toBe(404);
    const bad = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds: ['0123456789abcdef01234567'] } });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/not accepted devices: 0123456789abcdef01234567/);
  });
});
