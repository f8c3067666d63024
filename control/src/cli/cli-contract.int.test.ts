import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { startCliServer, type CliServer } from '../test-support/cli-server.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { runCli } from '../test-support/run-cli.js';

/**
 * The CLI's requests against the real server (PostgreSQL, HTTP): each command is
 * checked by what the server then holds, read back through the API, so a wrong
 * path, body or query parameter fails here.
 */
describe('kernex commands speak the contract (real server)', () => {
  let cli: CliServer;
  let env: Record<string, string>;
  let url: string;
  let headers: Record<string, string>;
  const get = async (p: string): Promise<any> => (await api('GET', `${url}${p}`, headers)).body;

  beforeAll(async () => {
    cli = await startCliServer();
    env = cli.env;
    url = cli.server.httpUrl;
    headers = cli.server.adminHeaders;
  });
  afterAll(async () => {
    await cli?.stop();
  });

  /** HTTP requests the server has answered, from its latency histogram, leaving out /metrics itself. */
  const requestsServed = async (): Promise<number> => {
    const text = await (await fetch(`${url}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith('kernex_http_request_duration_seconds_count{') && !l.includes('route="/metrics"'))
      .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
  };

  /** A device registered without a token: pending. */
  const pendingDevice = async (): Promise<TestDevice> => {
    const d = await makeDevice();
    expect((await register(url, d)).status).toBe(201);
    return d;
  };
  const push = async (name: string, version: string): Promise<{ id: string }> => {
    const file = path.join(cli.configHome, `${name}-${version}.tar.gz`);
    await fs.writeFile(file, await makeBundle({ name, version }));
    const res = await runCli(['bundles', 'push', file, '--json'], env);
    expect(res).toMatchObject({ code: 0, stderr: '' });
    return JSON.parse(res.stdout) as { id: string };
  };

  it('lists devices with the filters as query parameters', async () => {
    const [lab, other] = [await pendingDevice(), await pendingDevice()];
    expect((await runCli(['devices', 'tag', lab.id, '--add', 'contract-lab'], env)).code).toBe(0);
    const ids = async (args: string[]): Promise<string[]> => {
      const res = await runCli(['devices', 'ls', ...args, '--json'], env);
      expect(res).toMatchObject({ code: 0, stderr: '' });
      return (JSON.parse(res.stdout) as Array<{ id: string }>).map((d) => d.id);
    };
    expect(await ids(['--status', 'pending', '--tag', 'contract-lab'])).toEqual([lab.id]);
    expect(await ids(['--status', 'pending'])).toEqual(expect.arrayContaining([lab.id, other.id]));
    expect(await ids(['--status', 'accepted', '--tag', 'contract-lab'])).toEqual([]);
    expect(await ids(['--online', '--tag', 'contract-lab'])).toEqual([]);
    expect(await ids(['--offline', '--tag', 'contract-lab'])).toEqual([lab.id]);
  });

  it('shows, accepts, rejects, decommissions and tags a device by the contract paths', async () => {
    const d = await pendingDevice();
    const r = await pendingDevice();
    expect(JSON.parse((await runCli(['devices', 'show', d.id, '--json'], env)).stdout)).toMatchObject({ id: d.id, status: 'pending' });
    expect((await runCli(['devices', 'accept', d.id], env)).stdout).toBe(`Accepted device ${d.id} (now accepted).\n`);
    expect((await get(`/api/v1/devices/${d.id}`)).status).toBe('accepted');
    expect((await runCli(['devices', 'reject', r.id], env)).code).toBe(0);
    expect((await get(`/api/v1/devices/${r.id}`)).status).toBe('rejected');
    expect((await runCli(['devices', 'tag', d.id, '--add', 'prod', '--add', 'lab'], env)).code).toBe(0);
    expect((await runCli(['devices', 'tag', d.id, '--remove', 'lab'], env)).code).toBe(0);
    expect((await get(`/api/v1/devices/${d.id}`)).tags).toEqual(['prod']);
    expect((await runCli(['devices', 'rm', d.id], env)).code).toBe(0);
    expect((await get(`/api/v1/devices/${d.id}`)).status).toBe('decommissioned');
  });

  it('creates, lists and revokes enrollment tokens', async () => {
    const created = await runCli(['tokens', 'create', '--uses', '5', '--expires', '2h', '--tag', 'lab', '--json'], env);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const token = JSON.parse(created.stdout) as { id: string; token: string; uses: number; expiresAt: string };
    expect(token).toMatchObject({ token: expect.stringMatching(/^kxe_/), uses: 5 });
    const expiresInS = (Date.parse(token.expiresAt) - Date.now()) / 1000;
    expect(expiresInS).toBeGreaterThan(3600);
    expect(expiresInS).toBeLessThanOrEqual(7200);
    const listed = (await get('/api/v1/enrollment-tokens')).items as Array<{ id: string; tags: string[] }>;
    expect(listed.find((t) => t.id === token.id)?.tags).toEqual(['lab']);
    const table = (await runCli(['tokens', 'ls'], env)).stdout;
    expect(table).toMatch(/^ID\s+USES\s+EXPIRES/);
    expect(table).toContain(token.id);
    expect((await runCli(['tokens', 'revoke', token.id], env)).code).toBe(0);
    const late = await makeDevice();
    expect((await register(url, late, { enrollmentToken: token.token })).body.status).not.toBe('accepted');
  });

  it('streams a bundle file as the raw application/gzip body', async () => {
    const file = path.join(cli.configHome, 'streamed-1.0.0.tar.gz');
    const archive = await makeBundle({ name: 'streamed', version: '1.0.0', padding: 300_000 });
    await fs.writeFile(file, archive);
    const res = await runCli(['bundles', 'push', file, '--json'], env);
    expect(res).toMatchObject({ code: 0, stderr: '' }); // no progress bar when stderr is not a terminal
    const pushed = JSON.parse(res.stdout) as { id: string };
    expect(await get(`/api/v1/bundles/${pushed.id}`)).toMatchObject({ name: 'streamed', version: '1.0.0', size: archive.length, sha256: createHash('sha256').update(archive).digest('hex') });
    const missing = await runCli(['bundles', 'push', path.join(cli.configHome, 'nope.tar.gz')], env);
    expect(missing).toMatchObject({ code: 1, stderr: `kernex: cannot read ${path.join(cli.configHome, 'nope.tar.gz')}: ENOENT\n` });
  });

  it('shows and deletes a bundle named as name@version', async () => {
    const b = await push('named', '1.2.0');
    expect((await runCli(['bundles', 'show', 'named@1.2.0'], env)).stdout).toMatch(new RegExp(`^id:\\s+${b.id}$`, 'm'));
    expect((await runCli(['bundles', 'rm', 'named@1.2.0'], env)).code).toBe(0);
    expect((await api('GET', `${url}/api/v1/bundles/${b.id}`, headers)).status).toBe(404);
  });

  it('deploys with a rollout to a tag, shows the deployment with its executions, and cancels it', async () => {
    const d = await pendingDevice();
    await runCli(['devices', 'accept', d.id], env);
    await runCli(['devices', 'tag', d.id, '--add', 'contract-rollout'], env);
    const b = await push('rolled', '1.0.0');
    const res = await runCli(['deploy', 'rolled@1.0.0', '--tag', 'contract-rollout', '--phases', '10,50,100', '--max-failure', '20', '--max-concurrent', '5', '--json'], env);
    expect(res).toMatchObject({ code: 0, stderr: '' });
    const id = (JSON.parse(res.stdout) as { id: string }).id;
    expect(await get(`/api/v1/deployments/${id}`)).toMatchObject({
      bundleId: b.id,
      target: { tags: ['contract-rollout'] },
      rollout: { phases: [{ percent: 10, waitS: 0 }, { percent: 50, waitS: 0 }, { percent: 100, waitS: 0 }], maxFailurePercent: 20, maxConcurrent: 5 },
    });
    // The device is offline: its execution waits, and the table shows it.
    const shown = await runCli(['deployments', 'show', id], env);
    expect(shown.stdout).toMatch(/^status:\s+running$/m);
    expect(shown.stdout).toMatch(new RegExp(`^${d.id}\\s+(queued|sent)\\s`, 'm'));
    expect((await runCli(['deployments', 'cancel', id], env)).stdout).toBe(`Cancelled deployment ${id} (now cancelled).\n`);
    expect((await get(`/api/v1/deployments/${id}`)).status).toBe('cancelled');
  });

  it('refuses a deploy without exactly one kind of target, before any request', async () => {
    const before = await requestsServed();
    const res = await runCli(['deploy', 'rolled@1.0.0', '--all', '--device', 'd1'], env);
    expect(res).toMatchObject({ code: 1, stderr: 'kernex: name the target with exactly one of --device ID..., --tag TAG... or --all\n' });
    expect((await runCli(['deploy', 'rolled@1.0.0', '--all', '--phases', '50,10'], env)).stderr).toContain("option '--phases <percents>' argument '50,10' is invalid");
    expect(await requestsServed()).toBe(before);
  });
});
