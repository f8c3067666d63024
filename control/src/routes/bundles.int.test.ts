import { createPublicKey, verify } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeArchive, makeBundle, type TestEntry } from '../../../shared/src/test-support/make-bundle.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

const manifest = (install = 'install.sh'): TestEntry => ({
  name: 'manifest.json',
  body: JSON.stringify({ name: 'evil', version: '1.0.0', install }),
});
const install: TestEntry = { name: 'install.sh', body: '#!/bin/sh\n' };

describe('bundles API', () => {
  let server: TestServer;
  let url: string;
  const upload = (body: Buffer, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(url, { method: 'POST', body, headers: { ...server.adminHeaders, 'content-type': 'application/gzip', ...headers } });

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_MAX_BUNDLE_MB: '1' });
    url = `${server.httpUrl}/api/v1/bundles`;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('stores a bundle, signs it, and refuses the same name and version again', async () => {
    const archive = await makeBundle({ name: 'web', version: '1.0.0', padding: 2000 });
    const res = await upload(archive);
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ name: 'web', version: '1.0.0', size: archive.length });
    const { createHash } = await import('node:crypto');
    expect(body.sha256).toBe(createHash('sha256').update(archive).digest('hex'));
    const text = `kernex-bundle:web:1.0.0:${String(body.sha256)}`;
    const key = createPublicKey(server.services.serverKey.publicKeyPem);
    expect(verify('sha256', Buffer.from(text), key, Buffer.from(String(body.signature), 'base64'))).toBe(true);

    const again = await upload(archive, { 'content-type': 'application/octet-stream' });
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ code: 'KX_CONFLICT', message: 'bundle web 1.0.0 exists already' });
  });

  it.each<[string, TestEntry[], string]>([
    ['an absolute path', [manifest(), install, { name: '/etc/cron.d/x', body: 'x' }], "unsafe entry '/etc/cron.d/x': absolute path"],
    ['a .. path', [manifest(), install, { name: 'a/../../x', body: 'x' }], "unsafe entry 'a/../../x'"],
    ['a symlink out', [manifest(), install, { name: 'etc', type: 'symlink', linkname: '/etc' }], "unsafe entry 'etc': symlink to absolute path"],
    ['a relative symlink out', [manifest(), install, { name: 'up', type: 'symlink', linkname: '../../..' }], "unsafe entry 'up': symlink '../../..' leaves the bundle"],
    ['a hardlink out', [manifest(), install, { name: 'h', type: 'link', linkname: '../secret' }], "unsafe entry 'h'"],
    ['a device', [manifest(), install, { name: 'dev', type: 'character-device' }], "unsafe entry 'dev': device file"],
    ['a fifo', [manifest(), install, { name: 'p', type: 'fifo' }], "unsafe entry 'p': fifo"],
  ])('refuses an archive with %s and names the entry', async (_what, entries, message) => {
    const res = await upload(await makeArchive(entries));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe('KX_BUNDLE_UNSAFE_ENTRY');
    expect(body.message).toContain(message);
  });

  it.each<[string, () => Promise<Buffer>, RegExp]>([
    ['no manifest', () => makeArchive([install]), /manifest.json missing/],
    ['a manifest that is not JSON', () => makeArchive([{ name: 'manifest.json', body: '{' }, install]), /not valid JSON/],
    ['a version that is not semver', () => makeArchive([{ name: 'manifest.json', body: '{"name":"a","version":"v1","install":"i"}' }]), /\/version must be a semver version such as 1.2.0/],
    ['a missing install script', () => makeArchive([manifest('setup.sh'), install]), /install script 'setup.sh' is not a file/],
    ['bytes that are not gzip', async () => Buffer.from('plain text, not an archive'), /not a gzip-compressed archive/],
  ])('refuses a bundle with %s', async (_what, make, message) => {
    const res = await upload(await make());
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe('KX_BUNDLE_INVALID');
    expect(body.message).toMatch(message);
  });

  it('refuses a bundle over KERNEX_MAX_BUNDLE_MB with 413 and keeps nothing of it', async () => {
    const res = await upload(await makeBundle({ name: 'big', version: '1.0.0', padding: 1100 * 1024 }));
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: 'KX_PAYLOAD_TOO_LARGE' });
    const [row] = await server.sql`select count(*)::int as n from bundles where name = 'big'`;
    expect(row!.n).toBe(0);
    expect(await fs.readdir(path.join(server.config.dataDir, 'bundles', 'tmp'))).toEqual([]);
  });

  it('refuses an upload without an operator key', async () => {
    const viewer = await server.services.apiKeys.create('viewer', 'viewer');
    const res = await upload(await makeBundle({ version: '9.0.0' }), { authorization: `Bearer ${viewer.key}` });
    expect(res.status).toBe(403);
  });

  it('lists page by page, shows and deletes', async () => {
    for (const v of ['2.0.0', '2.0.1', '2.0.2']) expect((await upload(await makeBundle({ name: 'lister', version: v }))).status).toBe(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = `${url}?name=lister&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await (await fetch(q, { headers: server.adminHeaders })).json()) as { items: Array<{ id: string; version: string }>; nextCursor: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((i) => i.version));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['2.0.2', '2.0.1', '2.0.0']);

    const list = (await (await fetch(`${url}?name=lister`, { headers: server.adminHeaders })).json()) as { items: Array<{ id: string }> };
    const id = list.items[0]!.id;
    expect((await fetch(`${url}/${id}`, { headers: server.adminHeaders })).status).toBe(200);
    expect((await fetch(`${url}/${id}`, { method: 'DELETE', headers: server.adminHeaders })).status).toBe(204);
    expect((await fetch(`${url}/${id}`, { headers: server.adminHeaders })).status).toBe(404);
    expect((await fetch(`${url}/${id}/blob`, { headers: server.adminHeaders })).status).toBe(404);
    expect(await fs.readdir(path.join(server.config.dataDir, 'bundles'))).not.toContain(`${id}.tar.gz`);
    expect((await fetch(`${url}?cursor=garbage`, { headers: server.adminHeaders })).status).toBe(400);
  });

  it('serves the blob whole and by range, with If-Range on the ETag', async () => {
    const archive = await makeBundle({ name: 'ranged', version: '1.0.0', padding: 5000 });
    const created = (await (await upload(archive)).json()) as { id: string; sha256: string };
    const blob = `${url}/${created.id}/blob`;
    const etag = `"${created.sha256}"`;

    const whole = await fetch(blob, { headers: server.adminHeaders });
    expect(whole.status).toBe(200);
    expect(whole.headers.get('etag')).toBe(etag);
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    expect(Buffer.from(await whole.arrayBuffer()).equals(archive)).toBe(true);

    const part = await fetch(blob, { headers: { ...server.adminHeaders, range: 'bytes=100-', 'if-range': etag } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-${archive.length - 1}/${archive.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(archive.subarray(100))).toBe(true);

    const stale = await fetch(blob, { headers: { ...server.adminHeaders, range: 'bytes=100-', 'if-range': '"other"' } });
    expect(stale.status).toBe(200);
    expect(Buffer.from(await stale.arrayBuffer()).length).toBe(archive.length);

    const past = await fetch(blob, { headers: { ...server.adminHeaders, range: `bytes=${archive.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${archive.length}`);
    expect(await past.json()).toMatchObject({ code: 'KX_RANGE_NOT_SATISFIABLE' });
  });
});
