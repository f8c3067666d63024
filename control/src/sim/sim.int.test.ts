import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { runSimulation, type Simulation } from '@kernex/agent/sim';
import type { ExecutionState } from '@kernex/shared';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

const run = promisify(execFile);
const FLOW: ExecutionState[] = ['received', 'downloading', 'installing', 'verifying', 'succeeded'];

let keyCache: string;
beforeAll(async () => {
  keyCache = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-sim-keys-'));
});
afterAll(async () => {
  await fs.rm(keyCache, { recursive: true, force: true });
});

let server: TestServer | undefined;
let sim: Simulation | undefined;
afterEach(async () => {
  await sim?.stop();
  await server?.stop();
  sim = undefined;
  server = undefined;
});

async function onlineCount(s: TestServer): Promise<number> {
  const res = await fetch(`${s.httpUrl}/api/v1/devices?online=true&limit=500`, { headers: s.adminHeaders });
  return ((await res.json()) as { items: unknown[] }).items.length;
}

/** Uploads a bundle and deploys it to every device (DESIGN §4, §5); answers the deployment id and the bundle size. */
async function deployToAll(s: TestServer, padding: number): Promise<{ id: string; size: number }> {
  const archive = await makeBundle({ version: '1.0.0', padding });
  const up = await fetch(`${s.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...s.adminHeaders, 'content-type': 'application/gzip' } });
  expect(up.status).toBe(201);
  const bundle = (await up.json()) as { id: string; size: number };
  const res = await api('POST', `${s.httpUrl}/api/v1/deployments`, s.adminHeaders, { bundleId: bundle.id, target: { all: true } });
  expect(res.status).toBe(201);
  return { id: res.body.id as string, size: bundle.size };
}

async function deployment(s: TestServer, id: string): Promise<{ status: string; counts: Record<string, number> }> {
  return (await api('GET', `${s.httpUrl}/api/v1/deployments/${id}`, s.adminHeaders)).body;
}

/** Records the states each device reports, as the broker sees them. */
function recordEvents(s: TestServer, ids: readonly string[]): Map<string, ExecutionState[]> {
  const seen = new Map<string, ExecutionState[]>(ids.map((id) => [id, []]));
  s.broker.on('device:event', (deviceId, event) => seen.get(deviceId)?.push(event.state));
  return seen;
}

describe('kernex sim', () => {
  it('brings a few dozen devices online with real keys, registration and MQTT, and a deployment to all of them completes (some downloading for real)', async () => {
    server = await startTestServer();
    sim = await runSimulation({ server: server.httpUrl, devices: 30, adminKey: server.adminKey, keyCache, logLevel: 'error', workers: 2, connectRate: 100, installMs: 50, downloadSample: 0.5 });
    await sim.waitFor((s) => s.connected === 30);
    await expect.poll(() => onlineCount(server!), { timeout: 10_000 }).toBe(30);
    expect(new Set(sim.deviceIds).size).toBe(30);

    const seen = recordEvents(server, sim.deviceIds);
    // 1.5 MiB: a real download takes two Range requests.
    const { id, size } = await deployToAll(server, 1536 * 1024);
    const done = await sim.waitFor((s) => s.executions.succeeded === 30);
    expect(done.commands).toBe(30);
    await expect.poll(() => deployment(server!, id), { timeout: 20_000 }).toMatchObject({ status: 'completed', counts: { succeeded: 30 } });
    for (const states of seen.values()) expect(states).toEqual(FLOW);
    // About half the devices fetched the whole blob for real; the others simulated the transfer.
    expect(done.downloadedBytes % size).toBe(0);
    expect(done.downloadedBytes / size).toBeGreaterThan(0);
    expect(done.downloadedBytes / size).toBeLessThan(30);
    const one = await api('GET', `${server.httpUrl}/api/v1/devices/${sim.deviceIds[0]}`, server.adminHeaders);
    expect(one.body.bundles).toEqual({ app: '1.0.0' });

    const final = await sim.stop();
    expect(final.everConnected).toBe(30);
    await expect.poll(() => onlineCount(server!), { timeout: 10_000 }).toBe(0);
  });

  it('reuses its key cache: a second run is the same fleet', async () => {
    server = await startTestServer();
    const first = await runSimulation({ server: server.httpUrl, devices: 5, adminKey: server.adminKey, keyCache, logLevel: 'error', workers: 1 });
    await first.waitFor((s) => s.connected === 5);
    const ids = [...first.deviceIds];
    await first.stop();
    sim = await runSimulation({ server: server.httpUrl, devices: 5, adminKey: server.adminKey, keyCache, logLevel: 'error', workers: 1 });
    await sim.waitFor((s) => s.connected === 5);
    expect(sim.stats().keys).toEqual({ cached: 5, made: 0 });
    expect(sim.deviceIds).toEqual(ids);
  });

  it('trusts the CA it is given (--ca-file): the token, registrations and MQTTS sessions of a server with a certificate no system trusts', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-sim-tls-'));
    try {
      const cert = path.join(dir, 'cert.pem');
      const key = path.join(dir, 'key.pem');
      // A certificate made outside our code, trusted by nothing but this file.
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
        '-subj', '/CN=kernex-sim-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
      server = await startTestServer({ KERNEX_TLS_CERT: cert, KERNEX_TLS_KEY: key, KERNEX_MQTTS_PORT: '0' });
      expect(server.httpUrl).toMatch(/^https:/);
      sim = await runSimulation({ server: server.httpUrl, devices: 3, adminKey: server.adminKey, keyCache, logLevel: 'error', workers: 1, caFile: cert, mqttUrl: `mqtts://127.0.0.1:${server.mqttsPort}` });
      await sim.waitFor((s) => s.connected === 3);
      expect(server.broker.connectedCount).toBe(3);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('reports failed installs as the contract says when --fail-rate is 1', async () => {
    server = await startTestServer();
    sim = await runSimulation({ server: server.httpUrl, devices: 4, adminKey: server.adminKey, keyCache, logLevel: 'error', workers: 1, installMs: 10, failRate: 1 });
    await sim.waitFor((s) => s.connected === 4);
    const seen = recordEvents(server, sim.deviceIds);
    await deployToAll(server, 1024);
    await sim.waitFor((s) => s.executions.failed === 4);
    // Nothing was installed before, so there is nothing to roll back to: failed, not rolled_back.
    await expect.poll(() => [...seen.values()].map((states) => states.at(-1))).toEqual(['failed', 'failed', 'failed', 'failed']);
    for (const states of seen.values()) expect(states).toEqual(['received', 'downloading', 'installing', 'verifying', 'failed']);
  });

  it('converges over flapping links: every device ends online and the deploy completes everywhere', async () => {
    server = await startTestServer();
    sim = await runSimulation({ server: server.httpUrl, devices: 20, adminKey: server.adminKey, keyCache, logLevel: 'error', workers: 2, connectRate: 100, installMs: 300, downloadSample: 0.3, flapMeanS: 1.5, reconnectMaxS: 2 });
    await sim.waitFor((s) => s.everConnected === 20);
    const seen = recordEvents(server, sim.deviceIds);
    const { id } = await deployToAll(server, 1024);
    await sim.waitFor((s) => s.flaps >= 20);
    await sim.waitFor((s) => s.executions.succeeded === 20);
    await expect.poll(() => deployment(server!, id), { timeout: 30_000 }).toMatchObject({ status: 'completed', counts: { succeeded: 20 } });
    // Every event reached the server in order, through the outbox, despite the cuts
    // (QoS 1 is at least once: a cut before PUBACK repeats an event, never reorders one).
    await expect.poll(() => [...seen.values()].filter((states) => states.at(-1) === 'succeeded').length, { timeout: 30_000 }).toBe(20);
    for (const states of seen.values()) expect(states.filter((s, i) => s !== states[i - 1])).toEqual(FLOW);
    sim.steady();
    await sim.waitFor((s) => s.connected === 20);
    await expect.poll(() => onlineCount(server!), { timeout: 20_000 }).toBe(20);
  });
});
