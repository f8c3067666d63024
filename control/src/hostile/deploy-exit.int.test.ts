import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { startCliServer, type CliServer } from '../test-support/cli-server.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { runCli } from '../test-support/run-cli.js';

/**
 * `kernex deploy --wait` exit codes (DESIGN §5), the real CLI process against
 * a real server and a real kernex-agent: 0 when every execution succeeded or
 * was skipped, 3 when aborted, 4 for any other outcome, 1 on a usage or
 * connection error.
 */
describe('kernex deploy --wait exit codes', () => {
  let cli: CliServer;
  let agent: FleetAgent;

  async function push(version: string, healthCheck?: string): Promise<string> {
    const res = await fetch(`${cli.server.httpUrl}/api/v1/bundles`, {
      method: 'POST',
      body: await makeBundle({ version, healthCheck }),
      headers: { ...cli.server.adminHeaders, 'content-type': 'application/gzip' },
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }
  const deployWait = (ref: string, ...extra: string[]) => runCli(['deploy', ref, '--device', agent.deviceId, '--wait', '--interval', '0.2', ...extra], cli.env);

  beforeAll(async () => {
    cli = await startCliServer({ KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    agent = await startAgent(cli.server.httpUrl, await enrollmentToken(cli.server.httpUrl, cli.server.adminHeaders, 1));
  });
  afterAll(async () => {
    await agent?.stop().catch(() => {});
    await cli?.stop();
    if (agent) await fs.rm(agent.stateDir, { recursive: true, force: true });
  });

  it('exits 0 when every execution succeeded, and 0 again when the device was already at that version (skipped)', async () => {
    await push('1.0.0');
    const run = await deployWait('app@1.0.0');
    expect(run.code, run.stderr).toBe(0);
    expect(await agent.current('app')).toBe('1.0.0');
    const again = await deployWait('app@1.0.0', '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).counts).toMatchObject({ skipped: 1 });
  });

  it('exits 4 when every device rolled back (the health check exits 1)', async () => {
    await push('2.0.0', '#!/bin/sh\nexit 1\n');
    const run = await deployWait('app@2.0.0', '--json');
    expect(run.code, run.stderr).toBe(4);
    const d = JSON.parse(run.stdout) as { status: string; counts: Record<string, number> };
    expect(d.status).toBe('completed');
    expect(d.counts).toMatchObject({ rolled_back: 1, succeeded: 0 });
    expect(run.stderr).toMatch(/^kernex: deployment \S+ completed: rolled_back 1\n$/);
    expect(await agent.current('app')).toBe('1.0.0');
  });

  it('exits 3 when the deployment is aborted past its failure threshold', async () => {
    await push('3.0.0', '#!/bin/sh\nexit 1\n');
    const run = await deployWait('app@3.0.0', '--max-failure', '0', '--json');
    expect(run.code, run.stderr).toBe(3);
    expect(JSON.parse(run.stdout).status).toBe('aborted');
  });

  it('exits 1 on bad usage and on a server it cannot reach', async () => {
    const noTarget = await runCli(['deploy', 'app@1.0.0', '--wait'], cli.env);
    expect(noTarget.code).toBe(1);
    expect(noTarget.stderr).toMatch(/exactly one of --device/);
    const badOption = await runCli(['deploy', 'app@1.0.0', '--all', '--wait', '--interval', 'soon'], cli.env);
    expect(badOption.code).toBe(1);
    const unreachable = await runCli(['deploy', 'app@1.0.0', '--all', '--wait'], { ...cli.env, KERNEX_URL: 'http://127.0.0.1:1' });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^kernex: /);
  });
});
