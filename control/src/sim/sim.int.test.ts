import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runSimulation, type Simulation } from '@kernex/agent/sim';
import type { Command, ExecutionState } from '@kernex/shared';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

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

function deployCommand(executionId: string): Command {
  return {
    id: randomUUID(),
    type: 'deploy',
    executionId,
    issuedAt: new Date().toISOString(),
    timeoutS: 600,
    bundle: { id: randomUUID(), name: 'app', version: '1.0.0', sha256: 'a'.repeat(64), size: 1024, url: '/api/v1/bundles/none/blob', signature: 'c2ln' },
  };
}

/** Sends a deploy to every device through the broker and records each device's reported states. */
function deployToAll(s: TestServer, ids: string[]): Map<string, ExecutionState[]> {
  const seen = new Map<string, ExecutionState[]>(ids.map((id) => [id, []]));
  const executionId = randomUUID();
  s.broker.on('device:event', (deviceId, event) => {
    if (event.executionId === executionId) seen.get(deviceId)?.push(event.state);
  });
  for (const id of ids) void s.broker.publishCommand(id, deployCommand(executionId));
  return seen;
}

describe('kernex sim', () => {
  it('brings a few dozen devices online with real keys, registration and MQTT, and runs a deploy on each', async () => {
    server = await startTestServer();
    sim = await runSimulation({ server: server.httpUrl, devices: 30, adminKey: server.adminKey, keyCache, workers: 2, connectRate: 100, installMs: 50, downloadSample: 0 });
    await sim.waitFor((s) => s.connected === 30);
    await expect.poll(() => onlineCount(server!), { timeout: 10_000 }).toBe(30);
    expect(new Set(sim.deviceIds).size).toBe(30);

    const seen = deployToAll(server, sim.deviceIds);
    const done = await sim.waitFor((s) => s.executions.succeeded === 30);
    expect(done.commands).toBe(30);
    await expect.poll(() => [...seen.values()].filter((states) => states.at(-1) === 'succeeded').length).toBe(30);
    for (const states of seen.values()) expect(states).toEqual(FLOW);

    const final = await sim.stop();
    expect(final.everConnected).toBe(30);
    await expect.poll(() => onlineCount(server!), { timeout: 10_000 }).toBe(0);
  });

  it('reuses its key cache: a second run is the same fleet', async () => {
    server = await startTestServer();
    const first = await runSimulation({ server: server.httpUrl, devices: 5, adminKey: server.adminKey, keyCache, workers: 1 });
    await first.waitFor((s) => s.connected === 5);
    const ids = [...first.deviceIds];
    await first.stop();
    sim = await runSimulation({ server: server.httpUrl, devices: 5, adminKey: server.adminKey, keyCache, workers: 1 });
    await sim.waitFor((s) => s.connected === 5);
    expect(sim.stats().keys).toEqual({ cached: 5, made: 0 });
    expect(sim.deviceIds).toEqual(ids);
  });

  it('converges over flapping links: every device ends online and the deploy completes everywhere', async () => {
    server = await startTestServer();
    sim = await runSimulation({ server: server.httpUrl, devices: 20, adminKey: server.adminKey, keyCache, workers: 2, connectRate: 100, installMs: 300, downloadSample: 0, flapMeanS: 1.5, reconnectMaxS: 2 });
    await sim.waitFor((s) => s.everConnected === 20);
    const seen = deployToAll(server, sim.deviceIds);
    await sim.waitFor((s) => s.flaps >= 20);
    await sim.waitFor((s) => s.executions.succeeded === 20);
    // Every event reached the server in order, through the outbox, despite the cuts
    // (QoS 1 is at least once: a cut before PUBACK repeats an event, never reorders one).
    await expect.poll(() => [...seen.values()].filter((states) => states.at(-1) === 'succeeded').length, { timeout: 30_000 }).toBe(20);
    for (const states of seen.values()) expect(states.filter((s, i) => s !== states[i - 1])).toEqual(FLOW);
    sim.steady();
    await sim.waitFor((s) => s.connected === 20);
    await expect.poll(() => onlineCount(server!), { timeout: 20_000 }).toBe(20);
  });
});
