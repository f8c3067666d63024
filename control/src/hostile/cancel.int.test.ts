import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/** True while a process with this pid exists and is not a zombie (an ended process waiting to be reaped). */
async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return !/^State:\s+Z/m.test(status);
}

/**
 * DESIGN §3 `cancel`: an execution that has not switched yet stops. A real
 * agent runs a script that blocks (a child `sleep` whose pid it writes into the
 * agent's state directory, three levels above the version's directory); the
 * deployment is cancelled once the API shows the execution `installing` (or
 * `verifying`) and the script is running.
 */
describe('cancelling a deployment while a device installs', () => {
  let server: TestServer;
  let agent: FleetAgent;
  let base: string;

  async function upload(archive: Buffer): Promise<string> {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }
  async function deploy(bundleId: string): Promise<string> {
    const res = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds: [agent.deviceId] } });
    expect(res.status).toBe(201);
    return res.body.id as string;
  }
  const stateOf = async (id: string): Promise<string | undefined> =>
    (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}/executions`, server.adminHeaders)).body.items[0]?.state;
  const bundlesOf = async (): Promise<Record<string, string>> => (await api('GET', `${server.httpUrl}/api/v1/devices/${agent.deviceId}`, server.adminHeaders)).body.bundles;
  /** The pid the blocking script wrote, once it is running. */
  async function blockedPid(file: string): Promise<number> {
    let pid = 0;
    await expect.poll(async () => (pid = Number(await fs.readFile(path.join(agent.stateDir, file), 'utf8').catch(() => '0')))).toBeGreaterThan(0);
    return pid;
  }
  const blocking = (pidFile: string): string => `#!/bin/sh\nsleep 300 &\necho $! > ../../../${pidFile}\nwait\n`;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    agent = await startAgent(server.httpUrl, await enrollmentToken(server.httpUrl, server.adminHeaders, 1));
    base = await upload(await makeBundle({ version: '1.0.0' }));
  });
  /** The device runs 1.0.0 (installed by the first test, skipped by the next). */
  async function onBase(): Promise<void> {
    const id = await deploy(base);
    await expect.poll(() => stateOf(id), { timeout: 60_000 }).toMatch(/^(succeeded|skipped)$/);
    expect(await bundlesOf()).toEqual({ app: '1.0.0' });
  }
  afterAll(async () => {
    await agent?.stop().catch(() => {});
    await server?.stop();
    if (agent) await fs.rm(agent.stateDir, { recursive: true, force: true });
  });

  it('kills the install process group, keeps the previous version and reports cancelled', { timeout: 150_000 }, async () => {
    await onBase();
    const id = await deploy(await upload(await makeBundle({ version: '2.0.0', install: blocking('install.pid') })));
    await expect.poll(() => stateOf(id), { timeout: 60_000 }).toBe('installing');
    const pid = await blockedPid('install.pid');
    expect(await alive(pid)).toBe(true);

    const cancelled = await api('POST', `${server.httpUrl}/api/v1/deployments/${id}/cancel`, server.adminHeaders);
    expect(cancelled.status).toBe(200);
    await expect.poll(() => stateOf(id), { timeout: 60_000 }).toBe('cancelled');
    await expect.poll(() => alive(pid)).toBe(false);
    expect(await agent.current('app')).toBe('1.0.0');
    await expect(fs.access(path.join(agent.stateDir, 'bundles', 'app', '2.0.0'))).rejects.toThrow();
    expect(await bundlesOf()).toEqual({ app: '1.0.0' });
  });

  it('kills the health check during verifying, keeps the previous version and reports cancelled', { timeout: 150_000 }, async () => {
    await onBase();
    const id = await deploy(await upload(await makeBundle({ version: '3.0.0', healthCheck: blocking('check.pid'), healthTimeoutS: 600 })));
    await expect.poll(() => stateOf(id), { timeout: 60_000 }).toBe('verifying');
    const pid = await blockedPid('check.pid');
    expect(await alive(pid)).toBe(true);

    const cancelled = await api('POST', `${server.httpUrl}/api/v1/deployments/${id}/cancel`, server.adminHeaders);
    expect(cancelled.status).toBe(200);
    await expect.poll(() => stateOf(id), { timeout: 60_000 }).toBe('cancelled');
    await expect.poll(() => alive(pid)).toBe(false);
    expect(await agent.current('app')).toBe('1.0.0');
    await expect(fs.access(path.join(agent.stateDir, 'bundles', 'app', '3.0.0'))).rejects.toThrow();
    expect(await bundlesOf()).toEqual({ app: '1.0.0' });
  });
});
