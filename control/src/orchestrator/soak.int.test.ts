import fs from 'node:fs/promises';
import path from 'node:path';
import { parseTopic } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/**
 * `rollout.soakS` (DESIGN §5) with real agents: a device stays `verifying`
 * after its switch, re-running its health check, and only then succeeds; a
 * failed check in the soak rolls back; the soak survives an agent restart;
 * its progress events keep a soak longer than timeoutS alive.
 */
describe('soak before success', () => {
  let server: TestServer;
  let token: string;
  let baseId: string;
  const agents: FleetAgent[] = [];

  async function upload(archive: Buffer): Promise<string> {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }
  async function deploy(bundleId: string, deviceIds: string[], rollout?: object, timeoutS?: number): Promise<string> {
    const res = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds }, ...(rollout ? { rollout } : {}), ...(timeoutS ? { timeoutS } : {}) });
    expect(res.status).toBe(201);
    return res.body.id as string;
  }
  const show = async (id: string): Promise<any> => (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}`, server.adminHeaders)).body;
  const stateOf = async (id: string, deviceId: string): Promise<string | undefined> =>
    ((await api('GET', `${server.httpUrl}/api/v1/deployments/${id}/executions`, server.adminHeaders)).body.items as Array<{ deviceId: string; state: string }>).find((e) => e.deviceId === deviceId)?.state;
  const agent = async (): Promise<FleetAgent> => {
    const a = await startAgent(server.httpUrl, token);
    agents.push(a);
    return a;
  };
  /** Execution events as the broker accepted them. */
  const events: Array<{ executionId: string; state: string; progress?: number }> = [];
  const executionOf = async (deploymentId: string, deviceId: string): Promise<string> =>
    (await server.sql<{ id: string }[]>`select id from executions where deployment_id = ${deploymentId} and device_id = ${deviceId}`)[0]!.id;
  /** Resolves once the device reports soak progress (`verifying` with `progress`) for the execution, counting from event `since`. */
  const soaking = async (deploymentId: string, deviceId: string, since = 0): Promise<void> => {
    const executionId = await executionOf(deploymentId, deviceId);
    await expect
      .poll(() => events.slice(since).some((e) => e.executionId === executionId && e.state === 'verifying' && e.progress !== undefined), { timeout: 60_000 })
      .toBe(true);
  };
  const checksRun = async (a: FleetAgent, version: string): Promise<number> =>
    (await fs.readFile(path.join(a.stateDir, 'bundles', 'app', version, '.checks'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    server.broker.aedes.on('publish', (packet, client) => {
      if (client && parseTopic(packet.topic)?.channel === 'events') events.push(JSON.parse(packet.payload.toString()) as (typeof events)[number]);
    });
    token = await enrollmentToken(server.httpUrl, server.adminHeaders, 20);
    baseId = await upload(await makeBundle({ version: '1.0.0' }));
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.agent.kill('SIGKILL').catch(() => {})));
    await server?.stop();
    for (const a of agents) await fs.rm(a.stateDir, { recursive: true, force: true });
  });

  it('rolls back a bundle whose health check starts failing 5 s after install during a 20 s soak, and its phase does not advance', { timeout: 180_000 }, async () => {
    const pair = await Promise.all([agent(), agent()]);
    const base = await deploy(baseId, pair.map((a) => a.deviceId));
    await expect.poll(async () => (await show(base)).status, { timeout: 60_000 }).toBe('completed');
    // The 1 % phase holds the lowest device id.
    const [first, second] = [...pair].sort((x, y) => x.deviceId.localeCompare(y.deviceId)) as [FleetAgent, FleetAgent];
    const bundle = await makeBundle({
      version: '2.0.0',
      install: '#!/bin/sh\ndate +%s > .installed_at\n',
      // Healthy for the first 5 s after the install, then not.
      healthCheck: '#!/bin/sh\n[ $(( $(date +%s) - $(cat .installed_at) )) -lt 5 ]\n',
    });
    const id = await deploy(await upload(bundle), [first.deviceId, second.deviceId], { phases: [{ percent: 1 }, { percent: 100 }], maxFailurePercent: 0, soakS: 20 });

    // Installed, switched and healthy at first: soaking, the next phase still held back.
    await soaking(id, first.deviceId);
    expect(await first.current('app')).toBe('2.0.0');
    await expect.poll(() => stateOf(id, first.deviceId), { timeout: 30_000 }).toBe('verifying');
    expect(await show(id)).toMatchObject({ phase: 0, status: 'running' });
    expect(await stateOf(id, second.deviceId)).toBe('queued');

    await expect.poll(() => stateOf(id, first.deviceId), { timeout: 60_000 }).toBe('rolled_back');
    await expect.poll(async () => (await show(id)).status, { timeout: 30_000 }).toBe('aborted');
    expect((await show(id)).phase).toBe(0);
    expect(await stateOf(id, second.deviceId)).toBe('cancelled');
    expect(await first.current('app')).toBe('1.0.0');
    expect(await second.current('app')).toBe('1.0.0');
    const executions = (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}/executions`, server.adminHeaders)).body.items as Array<{ deviceId: string; error?: string }>;
    expect(executions.find((e) => e.deviceId === first.deviceId)?.error).toMatch(/soak/);
  });

  it('resumes a soak after the agent is killed mid-soak, re-checks after the restart, then succeeds', { timeout: 180_000 }, async () => {
    const a = await agent();
    const bundle = await makeBundle({ version: '3.0.0', healthCheck: '#!/bin/sh\necho ok >> .checks\n' });
    const id = await deploy(await upload(bundle), [a.deviceId], { soakS: 20 });
    await soaking(id, a.deviceId);
    // The first check of the soak itself (after the one before the switch).
    await expect.poll(() => checksRun(a, '3.0.0'), { timeout: 60_000 }).toBeGreaterThanOrEqual(2);
    await expect.poll(() => stateOf(id, a.deviceId), { timeout: 30_000 }).toBe('verifying');
    await a.agent.kill('SIGKILL'); // a power cut
    const before = await checksRun(a, '3.0.0');

    const mark = events.length;
    await a.restart();
    // The restarted agent carries the soak on: progress again, not an instant success.
    await soaking(id, a.deviceId, mark);
    await expect.poll(() => stateOf(id, a.deviceId), { timeout: 60_000 }).toBe('succeeded');
    expect(await checksRun(a, '3.0.0')).toBeGreaterThan(before);
    expect(await a.current('app')).toBe('3.0.0');
  });

  it('succeeds with a soak longer than timeoutS, because its progress events count as progress', { timeout: 180_000 }, async () => {
    const a = await agent();
    const id = await deploy(await upload(await makeBundle({ version: '4.0.0', healthCheck: '#!/bin/sh\nexit 0\n' })), [a.deviceId], { soakS: 24 }, 8);
    await soaking(id, a.deviceId);
    await expect.poll(() => stateOf(id, a.deviceId), { timeout: 90_000 }).toMatch(/succeeded|timed_out/);
    expect(await stateOf(id, a.deviceId)).toBe('succeeded');
    // The deployment completes on the orchestrator's next tick after its last execution ended.
    await expect.poll(async () => (await show(id)).status, { timeout: 30_000 }).toBe('completed');
  });

  it('times out a device that goes silent during the soak', { timeout: 180_000 }, async () => {
    const a = await agent();
    const id = await deploy(await upload(await makeBundle({ version: '5.0.0' })), [a.deviceId], { soakS: 600 }, 5);
    await soaking(id, a.deviceId);
    await a.agent.kill('SIGKILL');
    await expect.poll(() => stateOf(id, a.deviceId), { timeout: 60_000 }).toBe('timed_out');
    // The deployment completes on the orchestrator's next tick after its last execution ended.
    await expect.poll(async () => (await show(id)).status, { timeout: 30_000 }).toBe('completed');
  });
});
