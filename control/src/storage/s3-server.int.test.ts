import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { freePort } from '../net/free-port.js';
import { api } from '../test-support/devices.js';
import { flakyLink } from '../test-support/flaky-link.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { startS3, type TestS3 } from '../test-support/s3-server.js';
import { spawnServer } from '../test-support/spawn-server.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function upload(server: TestServer, archive: Buffer): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** The value of one sample of `/metrics`, 0 when absent. */
async function metric(server: TestServer, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function deployTo(server: TestServer, bundleId: string, deviceId: string): Promise<string> {
  const created = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds: [deviceId] } });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

const deploymentStatus = async (server: TestServer, id: string): Promise<string> =>
  (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}`, server.adminHeaders)).body.status;

describe('kernex server with KERNEX_BUNDLE_STORE=s3', () => {
  let s3: TestS3;
  let server: TestServer;
  let link: Awaited<ReturnType<typeof flakyLink>>;
  let agent: FleetAgent;
  const size = 4 * 1024 * 1024;

  beforeAll(async () => {
    s3 = await startS3();
    const httpPort = await freePort();
    // Devices are told blob URLs through a link that breaks once, half-way through the first download.
    link = await flakyLink(httpPort, size / 2);
    server = await startTestServer({ ...s3.env, KERNEX_HTTP_PORT: String(httpPort), KERNEX_PUBLIC_URL: `http://127.0.0.1:${link.port}`, KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    agent = await startAgent(server.httpUrl, await enrollmentToken(server.httpUrl, server.adminHeaders, 1));
  });
  afterAll(async () => {
    await agent?.stop();
    await link?.close();
    await server?.stop();
    await s3?.close();
    if (agent) await fs.rm(agent.stateDir, { recursive: true, force: true });
  });

  it('stores an upload in the bucket byte for byte and serves Range, If-Range and ETag from it', async () => {
    const archive = await makeBundle({ name: 'ranges', version: '1.0.0', padding: 9 * 1024 * 1024 });
    const up = await upload(server, archive);
    expect(up.status).toBe(201);
    expect(up.body.sha256).toBe(sha256(archive));
    expect(sha256(await s3.objectBytes(`bundles/${up.body.id}.tar.gz`))).toBe(sha256(archive));

    const blob = `${server.httpUrl}/api/v1/bundles/${up.body.id}/blob`;
    const whole = await fetch(blob, { headers: server.adminHeaders });
    expect(whole.status).toBe(200);
    expect(whole.headers.get('etag')).toBe(`"${sha256(archive)}"`);
    expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(archive));

    const at = 8 * 1024 * 1024 - 3;
    const part = await fetch(blob, { headers: { ...server.adminHeaders, range: `bytes=${at}-`, 'if-range': `"${sha256(archive)}"` } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes ${at}-${archive.length - 1}/${archive.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(archive.subarray(at))).toBe(true);

    const stale = await fetch(blob, { headers: { ...server.adminHeaders, range: 'bytes=10-', 'if-range': '"another"' } });
    expect(stale.status).toBe(200);
    expect(Buffer.from(await stale.arrayBuffer()).length).toBe(archive.length);
  });

  it('a real agent resumes a download cut half-way with Range and installs the bundle from S3', async () => {
    const archive = await makeBundle({ version: '1.0.0', padding: size });
    const up = await upload(server, archive);
    expect(up.status).toBe(201);
    const deployment = await deployTo(server, up.body.id, agent.deviceId);
    await expect.poll(() => deploymentStatus(server, deployment), { timeout: 30_000 }).toBe('completed');
    expect(await agent.current('app')).toBe('1.0.0');
    expect(link.heads).toHaveLength(2);
    // It asks from what it kept: more than nothing, less than the whole archive.
    const resumedAt = Number(/\r\nrange: bytes=(\d+)-/i.exec(link.heads[1]!)?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThan(archive.length);
  });

  it('answers 503 while S3 is away, writes no bundle row, and devices get their bundle once it is back', async () => {
    const before = await upload(server, await makeBundle({ name: 'away', version: '1.0.0' }));
    expect(before.status).toBe(201);
    await s3.stop();
    try {
      const refused = await upload(server, await makeBundle({ name: 'away', version: '2.0.0' }));
      expect(refused.status).toBe(503);
      expect(refused.body.code).toBe('KX_UNAVAILABLE');
      expect(refused.headers.get('retry-after')).toBe('5');
      // Nothing half-written: no row without its blob, no staged file left.
      const listed = await api('GET', `${server.httpUrl}/api/v1/bundles?name=away`, server.adminHeaders);
      expect(listed.body.items.map((b: { version: string }) => b.version)).toEqual(['1.0.0']);
      expect(await fs.readdir(path.join(server.config.dataDir, 'upload-staging'))).toEqual([]);

      const blob = await fetch(`${server.httpUrl}/api/v1/bundles/${before.body.id}/blob`, { headers: server.adminHeaders });
      expect(blob.status).toBe(503);
      expect(((await blob.json()) as { code: string }).code).toBe('KX_UNAVAILABLE');

      // A device sent the bundle meanwhile gets 503s and retries.
      const deployment = await deployTo(server, before.body.id, agent.deviceId);
      const failedOpens = await metric(server, 'kernex_bundle_storage_errors_total', '{op="open"}');
      await expect.poll(() => metric(server, 'kernex_bundle_storage_errors_total', '{op="open"}')).toBeGreaterThan(failedOpens);
      expect(await deploymentStatus(server, deployment)).toBe('running');
      await s3.start();
      await expect.poll(() => deploymentStatus(server, deployment), { timeout: 30_000 }).toBe('completed');
      expect(await agent.current('away')).toBe('1.0.0');
    } finally {
      await s3.start();
    }
    const after = await upload(server, await makeBundle({ name: 'away', version: '2.0.0' }));
    expect(after.status).toBe(201);
  });
});

describe('kernex server start with an unusable bucket', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  async function start(env: Record<string, string>): Promise<{ code: number | null; lines: string[] }> {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-s3-start-'));
    dirs.push(dataDir);
    const proc = spawnServer({ ...env, KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
    const { code } = await proc.exited;
    return { code, lines: proc.stderr.trim().split('\n') };
  }

  it('ends with one line naming the missing bucket, and exit 1', async () => {
    const s3 = await startS3(null);
    try {
      const { code, lines } = await start(s3.env);
      expect(code).toBe(1);
      expect(lines).toEqual([`kernex server: KERNEX_S3_BUCKET 'kernex' does not exist at ${s3.endpoint}`]);
    } finally {
      await s3.close();
    }
  });

  it('ends with one line naming the unreachable endpoint, and exit 1', async () => {
    const s3 = await startS3();
    await s3.close();
    const { code, lines } = await start(s3.env);
    expect(code).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^kernex server: S3 endpoint ${s3.endpoint} is unreachable: ECONNREFUSED`));
  });
});
