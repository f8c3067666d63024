import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { startS3, type TestS3 } from '../test-support/s3-server.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

async function upload(server: TestServer, name: string, version: string): Promise<string> {
  const res = await fetch(`${server.httpUrl}/api/v1/bundles`, {
    method: 'POST',
    body: await makeBundle({ name, version }),
    headers: { ...server.adminHeaders, 'content-type': 'application/gzip' },
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function metric(server: TestServer, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

const versions = async (server: TestServer, name: string): Promise<string[]> =>
  ((await api('GET', `${server.httpUrl}/api/v1/bundles?name=${name}`, server.adminHeaders)).body.items as Array<{ version: string }>).map((b) => b.version).sort();

const exists = (file: string): Promise<boolean> =>
  fs.access(file).then(
    () => true,
    () => false,
  );

describe('bundle retention with KERNEX_BUNDLE_KEEP=2', () => {
  let server: TestServer;
  let agent: FleetAgent;
  let blobFile: (id: string) => string;
  const ids: Record<string, string> = {};
  let liveDeployment = '';
  let doneDeployment = '';

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_BUNDLE_KEEP: '2', KERNEX_ORCHESTRATOR_TICK_MS: '200', KERNEX_EXECUTION_RETENTION_DAYS: '1', KERNEX_AUDIT_RETENTION_DAYS: '1' });
    blobFile = (id) => path.join(server.config.dataDir, 'bundles', `${id}.tar.gz`);
    agent = await startAgent(server.httpUrl, await enrollmentToken(server.httpUrl, server.adminHeaders, 1));
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    if (agent) await fs.rm(agent.stateDir, { recursive: true, force: true });
  });

  it('keeps versions in use (installed on a device, in a live execution) beside the newest two, and prunes the rest with their blobs', async () => {
    // 1.0.0 ends up installed on a real agent.
    ids['1.0.0'] = await upload(server, 'app', '1.0.0');
    const installed = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId: ids['1.0.0'], target: { deviceIds: [agent.deviceId] } });
    doneDeployment = installed.body.id;
    await expect.poll(async () => (await api('GET', `${server.httpUrl}/api/v1/devices/${agent.deviceId}`, server.adminHeaders)).body.bundles).toEqual({ app: '1.0.0' });

    // 2.0.0 is sent to a device that never connects: its execution stays live.
    ids['2.0.0'] = await upload(server, 'app', '2.0.0');
    const offline = await makeDevice();
    const token = await enrollmentToken(server.httpUrl, server.adminHeaders, 1);
    const registered = await register(server.httpUrl, offline, { enrollmentToken: token });
    expect(registered.body.status).toBe('accepted');
    const live = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, {
      bundleId: ids['2.0.0'],
      target: { deviceIds: [registered.body.deviceId] },
      timeoutS: 3600,
    });
    expect(live.status).toBe(201);
    liveDeployment = live.body.id;

    for (const v of ['3.0.0', '4.0.0', '5.0.0']) ids[v] = await upload(server, 'app', v);
    // Pruned after the upload of 5.0.0, in the background: 3.0.0 is the only version beyond the two newest not in use.
    await expect.poll(() => versions(server, 'app')).toEqual(['1.0.0', '2.0.0', '4.0.0', '5.0.0']);
    await expect.poll(() => metric(server, 'kernex_bundles_pruned_total')).toBe(1);
    expect(await exists(blobFile(ids['3.0.0']!))).toBe(false);
    for (const v of ['1.0.0', '2.0.0', '4.0.0', '5.0.0']) expect(await exists(blobFile(ids[v]!))).toBe(true);
  });

  it('refuses to delete a version installed on a device', async () => {
    const res = await api('DELETE', `${server.httpUrl}/api/v1/bundles/${ids['1.0.0']}`, server.adminHeaders);
    expect(res.status).toBe(409);
    expect(await versions(server, 'app')).toContain('1.0.0');
  });

  it('prunes a version once its execution has ended, at the next upload', async () => {
    // The execution made no progress for two hours (its timeoutS is one): the orchestrator times it out.
    await server.sql`update executions set updated_at = now() - interval '2 hours' where deployment_id = ${liveDeployment}`;
    await expect.poll(async () => (await api('GET', `${server.httpUrl}/api/v1/deployments/${liveDeployment}`, server.adminHeaders)).body.status).toBe('completed');
    ids['6.0.0'] = await upload(server, 'app', '6.0.0');
    await expect.poll(() => versions(server, 'app')).toEqual(['1.0.0', '5.0.0', '6.0.0']);
    await expect.poll(() => metric(server, 'kernex_bundles_pruned_total')).toBe(3);
    expect(await exists(blobFile(ids['2.0.0']!))).toBe(false);
    expect(await exists(blobFile(ids['4.0.0']!))).toBe(false);
  });

  it('sweeps blobs no row names once they are older than the grace period, and reports rows whose blob is missing', async () => {
    const dir = path.join(server.config.dataDir, 'bundles');
    const oldOrphan = path.join(dir, `${randomUUID()}.tar.gz`);
    const youngOrphan = path.join(dir, `${randomUUID()}.tar.gz`);
    const notABundle = path.join(dir, 'notes.tar.gz');
    for (const f of [oldOrphan, youngOrphan, notABundle]) await fs.writeFile(f, 'left by a crash');
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    await fs.utimes(oldOrphan, twoHoursAgo, twoHoursAgo);
    await fs.utimes(notABundle, twoHoursAgo, twoHoursAgo);
    await fs.rm(blobFile(ids['5.0.0']!));

    const result = await server.services.retention.sweepBlobs();
    expect(result.missing).toEqual([ids['5.0.0']]);
    expect(await exists(oldOrphan)).toBe(false);
    expect(await exists(youngOrphan)).toBe(true);
    expect(await exists(notABundle)).toBe(true);
    for (const v of ['1.0.0', '6.0.0']) expect(await exists(blobFile(ids[v]!))).toBe(true);
    expect(await metric(server, 'kernex_orphan_blobs_removed_total')).toBe(1);
    expect(await metric(server, 'kernex_bundle_blobs_missing')).toBe(1);
  });

  it('deletes ended deployments with their executions, and audit entries, past their retention; keeps the rest', async () => {
    // The timed-out deployment and the oldest audit entry are made two days old (retention: one day).
    await server.sql`update deployments set updated_at = now() - interval '2 days' where id = ${liveDeployment}`;
    const [oldest] = await server.sql<{ id: string }[]>`select min(id)::text as id from audit_log`;
    await server.sql`update audit_log set at = now() - interval '2 days' where id = ${oldest!.id}`;
    const auditIds = async (): Promise<string[]> =>
      ((await api('GET', `${server.httpUrl}/api/v1/audit?limit=500`, server.adminHeaders)).body.items as Array<{ id: string | number }>).map((e) => String(e.id));
    expect(await auditIds()).toContain(oldest!.id);

    // (the hourly run may have done it already: the state and the counters say the same either way)
    await server.services.retention.pruneHistory();
    expect((await api('GET', `${server.httpUrl}/api/v1/deployments/${liveDeployment}`, server.adminHeaders)).status).toBe(404);
    expect((await api('GET', `${server.httpUrl}/api/v1/deployments/${doneDeployment}`, server.adminHeaders)).status).toBe(200);
    const [left] = await server.sql<{ n: number }[]>`select count(*)::int as n from executions where deployment_id = ${liveDeployment}`;
    expect(left!.n).toBe(0);
    expect(await auditIds()).not.toContain(oldest!.id);
    expect(await metric(server, 'kernex_history_pruned_total', '{kind="deployment"}')).toBe(1);
    expect(await metric(server, 'kernex_history_pruned_total', '{kind="audit"}')).toBe(1);
  });
});

describe('retention in the background', () => {
  let server: TestServer | undefined;
  let dir = '';
  afterAll(async () => {
    await server?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('sweeps a blob left by a crash in KERNEX_BUNDLE_DIR shortly after start, unasked', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-bundle-dir-'));
    const orphan = path.join(dir, `${randomUUID()}.tar.gz`);
    await fs.writeFile(orphan, 'left by a crash');
    const yesterday = new Date(Date.now() - 86_400_000);
    await fs.utimes(orphan, yesterday, yesterday);
    server = await startTestServer({ KERNEX_BUNDLE_DIR: dir });
    await expect.poll(() => metric(server!, 'kernex_orphan_blobs_removed_total'), { timeout: 30_000 }).toBe(1);
    expect(await exists(orphan)).toBe(false);
  });
});

describe('the orphan sweep over S3', () => {
  let s3: TestS3;
  let server: TestServer;
  beforeAll(async () => {
    s3 = await startS3();
    server = await startTestServer(s3.env);
  });
  afterAll(async () => {
    await server?.stop();
    await s3?.close();
  });

  it('removes an object no row names and keeps those that rows name', async () => {
    const kept = await upload(server, 'app', '1.0.0');
    const orphan = randomUUID();
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! },
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `bundles/${orphan}.tar.gz`, Body: Buffer.from('left by a crash') }));
    client.destroy();

    const result = await server.services.retention.sweepBlobs(0);
    expect(result).toEqual({ removed: [orphan], missing: [] });
    await expect(s3.objectBytes(`bundles/${orphan}.tar.gz`)).rejects.toThrow(/ENOENT/);
    expect((await s3.objectBytes(`bundles/${kept}.tar.gz`)).length).toBeGreaterThan(0);
  });
});
