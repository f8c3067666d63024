import fs from 'node:fs/promises';
import path from 'node:path';
import { cmdTopic, eventsTopic, type Command } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { connectDevice, metric } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/**
 * A device's `bundles` follows what happened on it (DESIGN §5): set on
 * succeeded, put back on rolled_back, corrected by telemetry `b`; and
 * `succeeded → rolled_back` happens only by a `rollback` command (DESIGN §3).
 */
describe('rollback bookkeeping', () => {
  let server: TestServer;
  let token: string;
  let baseId: string;
  const agents: FleetAgent[] = [];

  async function upload(archive: Buffer): Promise<string> {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }
  async function deploy(bundleId: string, deviceIds: string[], rollout?: object): Promise<string> {
    const res = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds }, ...(rollout ? { rollout } : {}) });
    expect(res.status).toBe(201);
    return res.body.id as string;
  }
  const show = async (id: string): Promise<any> => (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}`, server.adminHeaders)).body;
  const stateOf = async (id: string, deviceId: string): Promise<string | undefined> =>
    ((await api('GET', `${server.httpUrl}/api/v1/deployments/${id}/executions`, server.adminHeaders)).body.items as Array<{ deviceId: string; state: string }>).find((e) => e.deviceId === deviceId)?.state;
  const bundlesOf = async (deviceId: string): Promise<Record<string, string>> => (await api('GET', `${server.httpUrl}/api/v1/devices/${deviceId}`, server.adminHeaders)).body.bundles;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    token = await enrollmentToken(server.httpUrl, server.adminHeaders, 10);
    baseId = await upload(await makeBundle({ version: '1.0.0' }));
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop().catch(() => {})));
    await server?.stop();
    for (const a of agents) await fs.rm(a.stateDir, { recursive: true, force: true });
  });

  // Many steps through two real agents (install, check, phase, abort, rollback): generous bounds for a loaded machine.
  it('puts the previous version back in the device bundles when a succeeded execution is rolled back', { timeout: 180_000 }, async () => {
    const pair = await Promise.all([startAgent(server.httpUrl, token), startAgent(server.httpUrl, token)]);
    agents.push(...pair);
    const base = await deploy(baseId, pair.map((a) => a.deviceId));
    await expect.poll(async () => (await show(base)).status, { timeout: 60_000 }).toBe('completed');
    // The first phase (1 %) holds the lowest device id and succeeds; the other's health check fails: abort, rollback.
    const [first, second] = [...pair].sort((x, y) => x.deviceId.localeCompare(y.deviceId)) as [FleetAgent, FleetAgent];
    await fs.writeFile(path.join(second.stateDir, 'unhealthy'), '');
    const id = await deploy(await upload(await makeBundle({ version: '2.0.0', healthCheck: '#!/bin/sh\ntest ! -f ../../../unhealthy\n' })), [first.deviceId, second.deviceId], {
      phases: [{ percent: 1, waitS: 0 }, { percent: 100, waitS: 0 }],
      maxFailurePercent: 10,
    });
    await expect.poll(async () => (await show(id)).status, { timeout: 60_000 }).toBe('aborted');
    await expect.poll(() => stateOf(id, first.deviceId), { timeout: 60_000 }).toBe('rolled_back');
    expect(await first.current('app')).toBe('1.0.0');
    expect(await bundlesOf(first.deviceId)).toEqual({ app: '1.0.0' });
    expect(await bundlesOf(second.deviceId)).toEqual({ app: '1.0.0' });
  });

  it('corrects a wrong bundles from the device telemetry b', { timeout: 120_000 }, async () => {
    const agent = await startAgent(server.httpUrl, token);
    agents.push(agent);
    const base = await deploy(baseId, [agent.deviceId]);
    await expect.poll(() => stateOf(base, agent.deviceId), { timeout: 60_000 }).toBe('succeeded');
    const right = { app: '1.0.0' };
    expect(await bundlesOf(agent.deviceId)).toEqual(right);
    await server.sql`update devices set bundles = ${server.sql.json({ app: '9.9.9', ghost: '1.0.0' })} where id = ${agent.deviceId}`;
    expect(await bundlesOf(agent.deviceId)).toEqual({ app: '9.9.9', ghost: '1.0.0' });
    // The agent sends telemetry as soon as it connects.
    await agent.stop();
    await agent.restart();
    await expect.poll(() => bundlesOf(agent.deviceId), { timeout: 60_000 }).toEqual(right);
  });

  it('refuses rolled_back on a succeeded execution that was sent no rollback, and leaves it succeeded', async () => {
    const device = await makeDevice();
    expect((await register(server.httpUrl, device, { enrollmentToken: token })).body.status).toBe('accepted');
    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, device);
    try {
      const command = new Promise<Command>((resolve) => client.once('message', (_t, payload) => resolve(JSON.parse(payload.toString()) as Command)));
      await client.subscribeAsync(cmdTopic(device.id), { qos: 1 });
      const id = await deploy(await upload(await makeBundle({ name: 'solo', version: '1.0.0' })), [device.id]);
      const { executionId } = await command;
      const report = (state: string) => client.publishAsync(eventsTopic(device.id), JSON.stringify({ executionId, state, ts: Date.now() }), { qos: 1 });
      await report('succeeded');
      await expect.poll(async () => (await show(id)).status).toBe('completed');
      expect(await bundlesOf(device.id)).toEqual({ solo: '1.0.0' });

      const refused = await metric(server.httpUrl, 'kernex_execution_events_refused_total', { reason: 'transition' });
      await report('rolled_back');
      await expect.poll(() => metric(server.httpUrl, 'kernex_execution_events_refused_total', { reason: 'transition' })).toBe(refused + 1);
      expect(await stateOf(id, device.id)).toBe('succeeded');
      expect(await bundlesOf(device.id)).toEqual({ solo: '1.0.0' });
    } finally {
      await client.endAsync(true);
    }
  });
});
