import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Command, ExecutionEvent } from '@kernex/shared';
import type { DeviceContext } from '../device.js';
import { HttpClient } from '../device-http-client.js';
import { SimulatedInstaller } from './sim-installer.js';

/** A hand-written DeviceContext that records reports and resolves a promise on each. */
function fakeDevice(): DeviceContext & { events: ExecutionEvent[]; next(state: string, executionId?: string): Promise<void> } {
  const events: ExecutionEvent[] = [];
  const waiters: Array<{ state: string; executionId?: string; resolve: () => void }> = [];
  const matches = (e: ExecutionEvent, state: string, executionId?: string): boolean => e.state === state && (executionId === undefined || e.executionId === executionId);
  return {
    deviceId: 'd'.repeat(24),
    stateDir: '',
    serverPublicKey: '',
    server: 'http://127.0.0.1:1',
    http: new HttpClient(),
    log: pino({ level: 'silent' }),
    events,
    async report(e) {
      events.push(e);
      for (const w of waiters.filter((x) => matches(e, x.state, x.executionId))) w.resolve();
    },
    httpToken: async () => 'token',
    next(state, executionId) {
      if (events.some((e) => matches(e, state, executionId))) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ state, executionId, resolve }));
    },
  };
}

const deploy = (executionId: string, version = '1.0.0'): Command => ({
  id: `c-${executionId}`,
  type: 'deploy',
  executionId,
  issuedAt: new Date().toISOString(),
  timeoutS: 60,
  bundle: { id: 'b', name: 'app', version, sha256: 'a'.repeat(64), size: 10, url: '/x', signature: 's' },
});

describe('SimulatedInstaller', () => {
  it('reports the contract states once, however often a deploy is delivered', async () => {
    const device = fakeDevice();
    const installer = new SimulatedInstaller({ download: false, failRate: 0, installMs: 0 });
    await installer.handle(deploy('e1'), device);
    await installer.handle(deploy('e1'), device);
    await device.next('succeeded');
    expect(device.events.map((e) => e.state)).toEqual(['received', 'downloading', 'installing', 'verifying', 'succeeded']);
    expect(installer.installed()).toEqual({ app: '1.0.0' });
  });

  it('rolls a succeeded execution back to the version before it, and a failure after a success is rolled_back', async () => {
    const device = fakeDevice();
    const ok = new SimulatedInstaller({ download: false, failRate: 0, installMs: 0 });
    await ok.handle(deploy('e1', '1.0.0'), device);
    await device.next('succeeded');
    await ok.handle(deploy('e2', '2.0.0'), device);
    await device.next('succeeded', 'e2');
    expect(ok.installed()).toEqual({ app: '2.0.0' });
    await ok.handle({ id: 'r', type: 'rollback', executionId: 'e2', issuedAt: new Date().toISOString(), name: 'app' }, device);
    expect(ok.installed()).toEqual({ app: '1.0.0' });
    expect(device.events.at(-1)).toMatchObject({ executionId: 'e2', state: 'rolled_back' });

    const failing = new SimulatedInstaller({ download: false, failRate: 1, installMs: 0 });
    const other = fakeDevice();
    await failing.handle(deploy('e3'), other);
    await other.next('failed');
    expect(failing.installed()).toEqual({});
  });

  it('answers a cancel that comes before the deploy, and then ignores the deploy', async () => {
    const device = fakeDevice();
    const installer = new SimulatedInstaller({ download: false, failRate: 0, installMs: 0 });
    await installer.handle({ id: 'x', type: 'cancel', executionId: 'e9', issuedAt: new Date().toISOString() }, device);
    await installer.handle(deploy('e9'), device);
    expect(device.events.map((e) => e.state)).toEqual(['cancelled']);
  });

  it('soaks in verifying with progress before succeeding, and a failed soak check rolls back (soakS, soakFailRate)', async () => {
    const soaked = (executionId: string, version: string): Command => ({ ...(deploy(executionId, version) as Extract<Command, { type: 'deploy' }>), soakS: 0.2 } as Command);
    const device = fakeDevice();
    const healthy = new SimulatedInstaller({ download: false, failRate: 0, soakFailRate: 0, installMs: 0 });
    await healthy.handle(soaked('s1', '1.0.0'), device);
    await device.next('succeeded', 's1');
    const progress = device.events.filter((e) => e.state === 'verifying' && e.progress !== undefined).map((e) => e.progress);
    expect(progress).toEqual([25, 50, 75, 100]);

    const sick = new SimulatedInstaller({ download: false, failRate: 0, soakFailRate: 1, installMs: 0 });
    const other = fakeDevice();
    await sick.handle(deploy('s2', '1.0.0'), other);
    await other.next('succeeded', 's2');
    await sick.handle(soaked('s3', '2.0.0'), other);
    await other.next('rolled_back', 's3');
    expect(other.events.at(-1)?.error).toMatch(/soak/);
    expect(sick.installed()).toEqual({ app: '1.0.0' });
  });
});
