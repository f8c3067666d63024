import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApi } from '../test-support/fake-api.js';
import { runCli } from '../test-support/run-cli.js';

const device = (id: string, extra: object = {}) => ({
  id,
  name: `dev-${id}`,
  status: 'pending',
  online: false,
  lastSeenAt: null,
  tags: ['lab'],
  hardware: null,
  bundles: {},
  createdAt: '2026-11-23T10:00:00.000Z',
  ...extra,
});
const bundle = { id: 'b1', name: 'app', version: '1.2.0', sha256: 'ab'.repeat(32), size: 3, signature: 'sig', createdAt: '2026-11-23T10:00:00.000Z' };

/** The CLI's requests for endpoints of other issues, checked against the DESIGN.md paths with a fake server. */
describe('kernex commands speak the contract (fake API)', () => {
  const api = new FakeApi();
  let env: Record<string, string>;
  let dir: string;
  let deploymentPolls = 0;
  beforeAll(async () => {
    api
      .on('GET', /^\/api\/v1\/devices$/, (r) =>
        r.query.cursor ? { status: 200, body: { items: [device('d2')], nextCursor: null } } : { status: 200, body: { items: [device('d1')], nextCursor: 'c1' } },
      )
      .on('GET', /^\/api\/v1\/devices\/([^/]+)$/, (_r, m) => ({ status: 200, body: device(m[1]!) }))
      .on('POST', /^\/api\/v1\/devices\/([^/]+)\/(accept|reject)$/, (_r, m) => ({ status: 200, body: device(m[1]!, { status: m[2] === 'accept' ? 'accepted' : 'rejected' }) }))
      .on('DELETE', /^\/api\/v1\/devices\/([^/]+)$/, (_r, m) => ({ status: 200, body: device(m[1]!, { status: 'decommissioned' }) }))
      .on('PATCH', /^\/api\/v1\/devices\/([^/]+)$/, (r, m) => ({ status: 200, body: device(m[1]!, JSON.parse(r.body.toString())) }))
      .on('POST', /^\/api\/v1\/enrollment-tokens$/, (r) => ({ status: 201, body: { id: 't1', token: 'kxe_secret', uses: JSON.parse(r.body.toString()).uses, expiresAt: '2026-11-24T10:00:00.000Z' } }))
      .on('GET', /^\/api\/v1\/enrollment-tokens$/, () => ({ status: 200, body: { items: [{ id: 't1', uses: 5, expiresAt: '2026-11-24T10:00:00.000Z', tags: [] }], nextCursor: null } }))
      .on('DELETE', /^\/api\/v1\/enrollment-tokens\/([^/]+)$/, () => ({ status: 204 }))
      .on('POST', /^\/api\/v1\/bundles$/, (r) => ({ status: 201, body: { ...bundle, size: r.body.length, sha256: createHash('sha256').update(r.body).digest('hex') } }))
      .on('GET', /^\/api\/v1\/bundles$/, () => ({ status: 200, body: { items: [bundle], nextCursor: null } }))
      .on('GET', /^\/api\/v1\/bundles\/b1$/, () => ({ status: 200, body: bundle }))
      .on('DELETE', /^\/api\/v1\/bundles\/b1$/, () => ({ status: 204 }))
      .on('POST', /^\/api\/v1\/deployments$/, () => ({ status: 201, body: { id: 'dep1', bundleId: 'b1', status: 'running', counts: { queued: 4 } } }))
      .on('GET', /^\/api\/v1\/deployments\/dep1$/, () => {
        deploymentPolls++;
        return deploymentPolls < 3
          ? { status: 200, body: { id: 'dep1', bundleId: 'b1', status: 'running', counts: { succeeded: 1, installing: 1, queued: 2 } } }
          : { status: 200, body: { id: 'dep1', bundleId: 'b1', status: 'aborted', counts: { succeeded: 1, failed: 2, cancelled: 1 } } };
      })
      .on('GET', /^\/api\/v1\/deployments\/dep1\/executions$/, () => ({ status: 200, body: { items: [{ deviceId: 'd1', state: 'failed', error: 'health check failed', updatedAt: '2026-11-23T10:00:00.000Z' }], nextCursor: null } }))
      .on('POST', /^\/api\/v1\/deployments\/dep1\/cancel$/, () => ({ status: 200, body: { id: 'dep1', bundleId: 'b1', status: 'cancelled', counts: {} } }));
    await api.start();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-cli-fake-'));
    env = { KERNEX_URL: api.url, KERNEX_API_KEY: 'kx_fake', XDG_CONFIG_HOME: dir };
  });
  afterAll(async () => {
    await api.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const last = () => api.seen[api.seen.length - 1]!;

  it('lists devices across pages, with the filters as query parameters', async () => {
    const res = await runCli(['devices', 'ls', '--status', 'pending', '--tag', 'lab', '--online', '--json'], env);
    expect(res.code).toBe(0);
    expect((JSON.parse(res.stdout) as Array<{ id: string }>).map((d) => d.id)).toEqual(['d1', 'd2']);
    expect(last()).toMatchObject({ path: '/api/v1/devices', query: { status: 'pending', tag: 'lab', online: 'true', cursor: 'c1' } });
    expect(last().headers.authorization).toBe('Bearer kx_fake');
  });

  it('shows, accepts, rejects, decommissions and tags a device by the contract paths', async () => {
    expect(JSON.parse((await runCli(['devices', 'show', 'd1', '--json'], env)).stdout)).toMatchObject({ id: 'd1' });
    expect((await runCli(['devices', 'accept', 'd1'], env)).stdout).toBe('Accepted device d1 (now accepted).\n');
    expect(last()).toMatchObject({ method: 'POST', path: '/api/v1/devices/d1/accept' });
    await runCli(['devices', 'reject', 'd1'], env);
    expect(last()).toMatchObject({ method: 'POST', path: '/api/v1/devices/d1/reject' });
    await runCli(['devices', 'rm', 'd1'], env);
    expect(last()).toMatchObject({ method: 'DELETE', path: '/api/v1/devices/d1' });
    await runCli(['devices', 'tag', 'd1', '--add', 'prod', '--remove', 'lab'], env);
    expect(last()).toMatchObject({ method: 'PATCH', path: '/api/v1/devices/d1' });
    expect(JSON.parse(last().body.toString())).toEqual({ tags: ['prod'] });
  });

  it('creates, lists and revokes enrollment tokens', async () => {
    const created = await runCli(['tokens', 'create', '--uses', '5', '--expires', '2h', '--tag', 'lab', '--json'], env);
    expect(JSON.parse(created.stdout)).toMatchObject({ token: 'kxe_secret', uses: 5 });
    expect(JSON.parse(last().body.toString())).toEqual({ uses: 5, expiresInS: 7200, tags: ['lab'] });
    expect((await runCli(['tokens', 'ls'], env)).stdout).toMatch(/^ID\s+USES\s+EXPIRES/);
    expect((await runCli(['tokens', 'revoke', 't1'], env)).code).toBe(0);
    expect(last()).toMatchObject({ method: 'DELETE', path: '/api/v1/enrollment-tokens/t1' });
  });

  it('streams a bundle file as the raw application/gzip body', async () => {
    const file = path.join(dir, 'app.tar.gz');
    const content = Buffer.alloc(300_000, 7);
    await fs.writeFile(file, content);
    const res = await runCli(['bundles', 'push', file, '--json'], env);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ size: content.length, sha256: createHash('sha256').update(content).digest('hex') });
    expect(last().headers['content-type']).toBe('application/gzip');
    expect(last().headers['content-length']).toBe(String(content.length));
    expect(res.stderr).toBe(''); // no progress bar when stderr is not a terminal
    const missing = await runCli(['bundles', 'push', path.join(dir, 'nope.tar.gz')], env);
    expect(missing).toMatchObject({ code: 1, stderr: `kernex: cannot read ${path.join(dir, 'nope.tar.gz')}: ENOENT\n` });
  });

  it('shows and deletes a bundle named as name@version', async () => {
    expect((await runCli(['bundles', 'show', 'app@1.2.0'], env)).stdout).toMatch(/^id:\s+b1$/m);
    await runCli(['bundles', 'rm', 'app@1.2.0'], env);
    expect(last()).toMatchObject({ method: 'DELETE', path: '/api/v1/bundles/b1' });
  });

  it('deploys with a rollout, waits, and exits 3 when the deployment is aborted', async () => {
    const res = await runCli(['deploy', 'app@1.2.0', '--tag', 'lab', '--phases', '10,50,100', '--max-failure', '20', '--max-concurrent', '5', '--wait', '--interval', '0.05', '--json'], env);
    const post = api.seen.find((r) => r.method === 'POST' && r.path === '/api/v1/deployments')!;
    expect(JSON.parse(post.body.toString())).toEqual({
      bundleId: 'b1',
      target: { tags: ['lab'] },
      rollout: { phases: [{ percent: 10, waitS: 0 }, { percent: 50, waitS: 0 }, { percent: 100, waitS: 0 }], maxFailurePercent: 20, maxConcurrent: 5 },
    });
    expect(res.code).toBe(3);
    expect(JSON.parse(res.stdout)).toMatchObject({ id: 'dep1', status: 'aborted' });
    expect(res.stderr).toBe('kernex: deployment dep1 aborted: succeeded 1, failed 2, cancelled 1\n');
  });

  it('refuses a deploy without exactly one kind of target, before any request', async () => {
    const before = api.seen.length;
    const res = await runCli(['deploy', 'b1', '--all', '--device', 'd1'], env);
    expect(res).toMatchObject({ code: 1, stderr: 'kernex: name the target with exactly one of --device ID..., --tag TAG... or --all\n' });
    expect((await runCli(['deploy', 'b1', '--all', '--phases', '50,10'], env)).stderr).toContain("option '--phases <percents>' argument '50,10' is invalid");
    expect(api.seen.length).toBe(before);
  });

  it('shows a deployment with its executions, and cancels it', async () => {
    const shown = await runCli(['deployments', 'show', 'dep1'], env);
    expect(shown.stdout).toMatch(/^status:\s+aborted$/m);
    expect(shown.stdout).toMatch(/^d1\s+failed\s+2026-11-23 10:00:00Z\s+health check failed$/m);
    expect((await runCli(['deployments', 'cancel', 'dep1'], env)).stdout).toBe('Cancelled deployment dep1 (now cancelled).\n');
    expect(last()).toMatchObject({ method: 'POST', path: '/api/v1/deployments/dep1/cancel' });
  });
});
