import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runSimulation, type Simulation } from '@kernex/agent/sim';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { runCli } from '../test-support/run-cli.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/**
 * `kernex bundles` and `kernex deploy --wait` as a user runs them: the real
 * CLI process against a real server, with simulated devices (the agent's own
 * device model) that install for real or fail on purpose.
 */
describe('kernex bundles and deploy, as a subprocess against a real server and simulated devices', () => {
  let server: TestServer;
  let work: string;
  let env: Record<string, string>;
  let good: Simulation;
  let failing: Simulation;

  beforeAll(async () => {
    server = await startTestServer();
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-deploy-cli-'));
    env = { KERNEX_URL: server.httpUrl, KERNEX_API_KEY: server.adminKey, XDG_CONFIG_HOME: work };
    const common = { server: server.httpUrl, adminKey: server.adminKey, logLevel: 'error', workers: 1, installMs: 20 };
    good = await runSimulation({ ...common, devices: 3, namePrefix: 'good', keyCache: path.join(work, 'keys-good') });
    failing = await runSimulation({ ...common, devices: 2, namePrefix: 'bad', failRate: 1, downloadSample: 0, keyCache: path.join(work, 'keys-bad') });
    await Promise.all([good.waitFor((s) => s.connected === 3), failing.waitFor((s) => s.connected === 2)]);
  });
  afterAll(async () => {
    await good?.stop();
    await failing?.stop();
    await server?.stop();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('pushes a bundle, deploys it with --wait until every device succeeded, and lists what happened', async () => {
    const file = path.join(work, 'app-1.0.0.tar.gz');
    await fs.writeFile(file, await makeBundle({ version: '1.0.0' }));

    const pushed = await runCli(['bundles', 'push', file, '--json'], env);
    expect(pushed).toMatchObject({ code: 0, stderr: '' });
    const bundle = JSON.parse(pushed.stdout) as { id: string; name: string; version: string; sha256: string };
    expect(bundle).toMatchObject({ name: 'app', version: '1.0.0', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });

    const listed = JSON.parse((await runCli(['bundles', 'ls', '--json'], env)).stdout) as Array<{ id: string }>;
    expect(listed.map((b) => b.id)).toContain(bundle.id);
    expect(JSON.parse((await runCli(['bundles', 'show', 'app@1.0.0', '--json'], env)).stdout)).toMatchObject({ id: bundle.id });

    const ids = good.deviceIds.slice(0, 3);
    const deploy = await runCli(['deploy', bundle.id, ...ids.flatMap((id) => ['--device', id]), '--wait', '--interval', '0.2', '--json'], env);
    expect(deploy.stderr).toBe('');
    expect(deploy.code).toBe(0);
    const done = JSON.parse(deploy.stdout) as { id: string; status: string; counts: Record<string, number> };
    expect(done.status).toBe('completed');
    expect(done.counts.succeeded).toBe(3);

    const shown = JSON.parse((await runCli(['deployments', 'show', done.id, '--json'], env)).stdout) as { status: string };
    expect(shown.status).toBe('completed');
    const all = JSON.parse((await runCli(['deployments', 'ls', '--json'], env)).stdout) as Array<{ id: string }>;
    expect(all.map((d) => d.id)).toContain(done.id);
  });

  it('exits 3 with one line when the deployment is aborted past its failure threshold', async () => {
    const file = path.join(work, 'app-2.0.0.tar.gz');
    await fs.writeFile(file, await makeBundle({ version: '2.0.0' }));
    const bundle = JSON.parse((await runCli(['bundles', 'push', file, '--json'], env)).stdout) as { id: string };

    const ids = failing.deviceIds.slice(0, 2);
    const deploy = await runCli(['deploy', bundle.id, ...ids.flatMap((id) => ['--device', id]), '--max-failure', '0', '--wait', '--interval', '0.2'], env);
    expect(deploy.code).toBe(3);
    expect(deploy.stderr.trim().split('\n').at(-1)).toMatch(/aborted/);
  });

  it('removes a bundle no live deployment uses, and says why it cannot find it afterwards', async () => {
    const file = path.join(work, 'tool-0.1.0.tar.gz');
    await fs.writeFile(file, await makeBundle({ name: 'tool', version: '0.1.0' }));
    const bundle = JSON.parse((await runCli(['bundles', 'push', file, '--json'], env)).stdout) as { id: string };
    expect((await runCli(['bundles', 'rm', bundle.id], env)).code).toBe(0);
    const again = await runCli(['bundles', 'show', bundle.id], env);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/^kernex: .*not found.*\(404 KX_NOT_FOUND\)\n$/);
  });
});
