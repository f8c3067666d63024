import { createHash, createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { indexSigningText, parseTopic, signDeviceJwt } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeArchive, type TestEntry } from '../../../shared/src/test-support/make-bundle.js';
import { nodeAppEntries } from '../../bench/src/node-app.js';
import { deltaBlobKey } from '../services/delta.service.js';
import { api } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { metric } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/**
 * Delta transfer (DESIGN §4) with a real agent: B built from the kept A plus
 * the delta, checked against the signed index; and every hostile delta —
 * not matching, an index signed by another key, entries not in the index,
 * path tricks — refused, the full bundle fetched instead, the event saying why,
 * and never a tree that differs from the index.
 */
describe('delta transfer', () => {
  let server: TestServer;
  let agent: FleetAgent;
  let installed: { id: string; version: string };
  /** Execution events as the broker accepted them. */
  const events: Array<{ executionId: string; state: string; error?: string }> = [];
  const PACKAGES = 8;

  async function upload(archive: Buffer): Promise<{ id: string; size: number }> {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; size: number };
  }
  const version = (v: string, bumped?: number): Promise<Buffer> => makeArchive(nodeAppEntries({ version: v, packages: PACKAGES, bumped, bumpTo: v }));
  async function deployAndWait(bundleId: string): Promise<{ id: string; state: string; errors: string[] }> {
    const res = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds: [agent.deviceId] } });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    await expect.poll(async () => (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}`, server.adminHeaders)).body.status, { timeout: 60_000 }).toBe('completed');
    const exec = (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}/executions`, server.adminHeaders)).body.items[0] as { state: string };
    const executionId = (await server.sql<{ id: string }[]>`select id from executions where deployment_id = ${id}`)[0]!.id;
    await expect.poll(() => events.some((e) => e.executionId === executionId && e.state === exec.state), { timeout: 30_000 }).toBe(true);
    return { id, state: exec.state, errors: events.filter((e) => e.executionId === executionId && e.error).map((e) => e.error!) };
  }
  const served = async (): Promise<{ full: number; delta: number }> => ({
    full: await metric(server.httpUrl, 'kernex_bundle_bytes_served_total', { kind: 'full' }),
    delta: await metric(server.httpUrl, 'kernex_bundle_bytes_served_total', { kind: 'delta' }),
  });
  /** Every path under a version directory the agent installed, dot-files (the install's own) aside. */
  async function tree(v: string): Promise<string[]> {
    const root = path.join(agent.stateDir, 'bundles', 'node-app', v);
    const out: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      for (const e of await fs.readdir(path.join(root, rel), { withFileTypes: true })) {
        const p = rel ? `${rel}/${e.name}` : e.name;
        if (!rel && e.name.startsWith('.')) continue;
        out.push(p);
        if (e.isDirectory()) await walk(p);
      }
    };
    await walk('');
    return out.sort();
  }
  /** The paths B's archive holds, as the index lists them. */
  async function indexPaths(bundleId: string): Promise<string[]> {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles/${bundleId}/index`, { headers: server.adminHeaders });
    expect(res.status).toBe(200);
    return ((await res.json()) as { entries: Array<{ path: string }> }).entries.map((e) => e.path).sort();
  }
  /** Replaces the stored delta A→B with `archive` (and its row's sha256 and size), as a hostile store or server would. */
  async function plantDelta(fromId: string, to: { id: string }, archive: Buffer): Promise<void> {
    const made = await server.services.deltas.ensure(fromId, to);
    expect(made).toBeDefined();
    const tmp = server.services.storage.tempPath();
    await fs.writeFile(tmp, archive);
    await server.services.storage.put(deltaBlobKey(fromId, to.id), tmp);
    await server.sql`update bundle_deltas set sha256 = ${createHash('sha256').update(archive).digest('hex')}, size = ${archive.length} where from_bundle_id = ${fromId} and to_bundle_id = ${to.id}`;
  }
  /** Deploys `to` expecting the delta refused for `why`, the full bundle fetched and the tree exactly the index. */
  async function expectFallback(to: { id: string; size: number }, v: string, why: RegExp): Promise<void> {
    const before = await served();
    const outcome = await deployAndWait(to.id);
    expect(outcome.state).toBe('succeeded');
    expect(outcome.errors.join('\n')).toMatch(why);
    expect(outcome.errors.join('\n')).toMatch(/fetching the full bundle/);
    const after = await served();
    expect(after.full - before.full).toBe(to.size);
    expect(await agent.current('node-app')).toBe(v);
    expect(await tree(v)).toEqual((await indexPaths(to.id)).filter((p) => p !== '.'));
    installed = { id: to.id, version: v };
  }

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    server.broker.aedes.on('publish', (packet, client) => {
      if (!client || parseTopic(packet.topic)?.channel !== 'events') return;
      events.push(JSON.parse(packet.payload.toString()) as (typeof events)[number]);
    });
    agent = await startAgent(server.httpUrl, await enrollmentToken(server.httpUrl, server.adminHeaders, 1));
  }, 120_000);
  afterAll(async () => {
    await agent?.agent.kill('SIGKILL');
    await server?.stop();
    if (agent) await fs.rm(agent.stateDir, { recursive: true, force: true });
  });

  it('installs B from the kept A plus a delta, fetching a small share of the full bundle', { timeout: 180_000 }, async () => {
    const a = await upload(await version('1.0.0'));
    expect((await deployAndWait(a.id)).state).toBe('succeeded');
    installed = { id: a.id, version: '1.0.0' };
    const b = await upload(await version('1.1.0', 3));
    const before = await served();
    const outcome = await deployAndWait(b.id);
    expect(outcome).toMatchObject({ state: 'succeeded', errors: [] });
    const after = await served();
    expect(after.full - before.full).toBe(0);
    const made = (await server.services.deltas.delta(a.id, b.id))!;
    expect(after.delta - before.delta).toBe(made.size);
    expect(made.size).toBeLessThan(b.size / 4);
    expect(await agent.current('node-app')).toBe('1.1.0');
    expect(await tree('1.1.0')).toEqual((await indexPaths(b.id)).filter((p) => p !== '.'));
    const pkg = JSON.parse(await fs.readFile(path.join(agent.stateDir, 'bundles', 'node-app', '1.1.0', 'node_modules/pkg-3/package.json'), 'utf8'));
    expect(pkg.version).toBe('1.1.0');
    installed = { id: b.id, version: '1.1.0' };
  });

  it('falls back to the full bundle when the index is signed by another key', { timeout: 120_000 }, async () => {
    const to = await upload(await version('1.2.0', 4));
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const [row] = await server.sql<{ sha256: string }[]>`select sha256 from bundle_indexes where bundle_id = ${to.id}`;
    const forged = sign('sha256', Buffer.from(indexSigningText('node-app', '1.2.0', row!.sha256)), other).toString('base64');
    await server.sql`update bundle_indexes set signature = ${forged} where bundle_id = ${to.id}`;
    await expectFallback(to, '1.2.0', /index signature does not match the server key/);
  });

  it('falls back when the delta does not match the index (a file with other content)', { timeout: 120_000 }, async () => {
    const to = await upload(await version('1.3.0', 5));
    await plantDelta(installed.id, to, await makeArchive([{ name: 'node_modules/pkg-5/package.json', body: '{"name":"pkg-5","version":"6.6.6"}' }]));
    await expectFallback(to, '1.3.0', /does not match its sha256 in the index|has \d+ bytes, the index/);
  });

  it('falls back when the delta holds an entry the index does not name', { timeout: 120_000 }, async () => {
    const to = await upload(await version('1.4.0', 6));
    await plantDelta(installed.id, to, await makeArchive([{ name: 'node_modules/evil.js', body: 'require("child_process").exec("rm -rf /")' }]));
    await expectFallback(to, '1.4.0', /'node_modules\/evil\.js' is not a file of the index/);
  });

  it('falls back when the delta download fails (its blob is gone from storage)', { timeout: 120_000 }, async () => {
    const to = await upload(await version('1.4.5', 1));
    expect(await server.services.deltas.ensure(installed.id, to)).toBeDefined();
    await server.services.storage.delete(deltaBlobKey(installed.id, to.id));
    await expectFallback(to, '1.4.5', /answered 404|404/);
  });

  const tricks: Array<{ what: string; entries: TestEntry[]; why: RegExp }> = [
    { what: "a '..' path", entries: [{ name: 'app/../../../escaped.txt', body: 'x' }], why: /'\.\.' in path/ },
    { what: 'an absolute path', entries: [{ name: '/tmp/kernex-delta-escape.txt', body: 'x' }], why: /absolute path/ },
    { what: 'a symlink out of the bundle', entries: [{ name: 'app/server.js', type: 'symlink', linkname: '/etc/passwd' }], why: /unsafe entry 'app\/server\.js': symlink to absolute path/ },
    { what: 'a symlink inside the bundle where the index has a file', entries: [{ name: 'app/server.js', type: 'symlink', linkname: '../check.sh' }], why: /'app\/server\.js' is a symlink, not a file/ },
    { what: 'a hardlink out of the bundle', entries: [{ name: 'app/server.js', type: 'link', linkname: '../../../../etc/passwd' }], why: /hardlink target/ },
  ];
  for (const t of tricks) {
    it(`falls back when the delta holds a path trick: ${t.what}`, { timeout: 120_000 }, async () => {
      const v = `1.5.${tricks.indexOf(t)}`;
      const to = await upload(await version(v, 7));
      await plantDelta(installed.id, to, await makeArchive(t.entries));
      await expectFallback(to, v, t.why);
      await expect(fs.access(path.join(agent.stateDir, 'escaped.txt'))).rejects.toThrow();
      await expect(fs.access(path.join(agent.stateDir, 'bundles', 'escaped.txt'))).rejects.toThrow();
      await expect(fs.access(path.join(os.tmpdir(), 'kernex-delta-escape.txt'))).rejects.toThrow();
    });
  }

  it('serves the delta with Range and If-Range like a blob, and only to a device sent the bundle', { timeout: 60_000 }, async () => {
    const to = await upload(await version('1.6.0', 2));
    const made = (await server.services.deltas.ensure(installed.id, to))!;
    const url = `${server.httpUrl}/api/v1/bundles/${to.id}/deltas/${installed.id}/blob`;
    const whole = Buffer.from(await (await fetch(url, { headers: server.adminHeaders })).arrayBuffer());
    expect(whole.length).toBe(made.size);
    const part = await fetch(url, { headers: { ...server.adminHeaders, range: 'bytes=10-', 'if-range': `"${made.sha256}"` } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(whole.subarray(10));
    const stale = await fetch(url, { headers: { ...server.adminHeaders, range: 'bytes=10-', 'if-range': '"other"' } });
    expect(stale.status).toBe(200);
    await stale.arrayBuffer();
    // No live execution of that bundle: the device is answered 404, as for the blob; no credential, 401.
    const privateKey = createPrivateKey(await fs.readFile(path.join(agent.stateDir, 'device.key'), 'utf8'));
    const token = await signDeviceJwt({ privateKey, deviceId: agent.deviceId, aud: 'kernex-http', now: Math.floor(Date.now() / 1000), ttlS: 600 });
    for (const u of [url, `${server.httpUrl}/api/v1/bundles/${to.id}/index`, `${server.httpUrl}/api/v1/bundles/${to.id}/blob`]) {
      expect((await fetch(u, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    }
    expect((await fetch(url)).status).toBe(401);
  });

  it('sweeps the blob of a delta whose bundle is gone, and keeps the others', { timeout: 60_000 }, async () => {
    const to = await upload(await version('1.7.0', 0));
    expect(await server.services.deltas.ensure(installed.id, to)).toBeDefined();
    // The deltas of other bundles whose blob is there (one test removed its delta's blob on purpose).
    const keptKeys: string[] = [];
    for (const r of await server.sql<{ blob_key: string }[]>`select blob_key from bundle_deltas where to_bundle_id <> ${to.id}`) {
      if (await server.services.storage.stat(r.blob_key)) keptKeys.push(r.blob_key);
    }
    expect(keptKeys.length).toBeGreaterThan(0);
    expect((await api('DELETE', `${server.httpUrl}/api/v1/bundles/${to.id}`, server.adminHeaders)).status).toBe(204);
    const result = await server.services.retention.sweepBlobs(0);
    expect(result.removed).toContain(deltaBlobKey(installed.id, to.id));
    expect(await server.services.storage.stat(deltaBlobKey(installed.id, to.id))).toBeUndefined();
    for (const key of keptKeys) expect(await server.services.storage.stat(key)).toBeDefined();
  });
});
