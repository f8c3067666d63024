import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { startServer } from '../server.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

describe('the device resource', () => {
  let server: TestServer;
  let url: string;
  let viewer: Record<string, string>;
  let operator: Record<string, string>;
  const devices: TestDevice[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    url = server.httpUrl;
    viewer = { authorization: `Bearer ${(await server.services.apiKeys.create('v', 'viewer')).key}` };
    operator = { authorization: `Bearer ${(await server.services.apiKeys.create('o', 'operator')).key}` };
    const token = await api('POST', `${url}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 3, expiresInS: 600, tags: ['lab'] });
    for (let i = 0; i < 5; i++) {
      const d = await makeDevice();
      devices.push(d);
      await register(url, d, i < 3 ? { enrollmentToken: token.body.token, name: `dev-${i}` } : { name: `dev-${i}` });
    }
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('lists devices filtered by status, tag and online, in pages', async () => {
    const all = await api('GET', `${url}/api/v1/devices?limit=2`, viewer);
    expect(all.status).toBe(200);
    expect(all.body.items.map((d: { id: string }) => d.id)).toEqual(devices.slice(0, 2).map((d) => d.id));
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const pageRes: { body: { items: Array<{ id: string }>; nextCursor: string | null } } = await api(
        'GET',
        `${url}/api/v1/devices?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        viewer,
      );
      ids.push(...pageRes.body.items.map((d) => d.id));
      cursor = pageRes.body.nextCursor;
    } while (cursor);
    expect(ids).toEqual(devices.map((d) => d.id));

    const pending = await api('GET', `${url}/api/v1/devices?status=pending`, viewer);
    expect(pending.body.items.map((d: { id: string }) => d.id)).toEqual(devices.slice(3).map((d) => d.id));
    const lab = await api('GET', `${url}/api/v1/devices?tag=lab`, viewer);
    expect(lab.body.items).toHaveLength(3);
    const online = await api('GET', `${url}/api/v1/devices?online=true`, viewer);
    expect(online.body).toEqual({ items: [], nextCursor: null });
    expect((await api('GET', `${url}/api/v1/devices?status=lost`, viewer)).status).toBe(400);
    expect((await api('GET', `${url}/api/v1/devices?limit=0`, viewer)).status).toBe(400);
    const badCursor = await api('GET', `${url}/api/v1/devices?cursor=nonsense`, viewer);
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.message).toMatch(/cursor/);
  });

  it('renames and re-tags a device for operators only', async () => {
    const id = devices[0]!.id;
    expect((await api('PATCH', `${url}/api/v1/devices/${id}`, viewer, { name: 'x' })).status).toBe(403);
    const res = await api('PATCH', `${url}/api/v1/devices/${id}`, operator, { name: 'renamed', tags: ['a', 'b', 'a'] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, name: 'renamed', tags: ['a', 'b'] });
    expect((await api('PATCH', `${url}/api/v1/devices/${id}`, operator, {})).status).toBe(400);
    expect((await api('PATCH', `${url}/api/v1/devices/${'0'.repeat(24)}`, operator, { name: 'n' })).status).toBe(404);
  });

  it('accepts and rejects for operators; a decommissioned device stays so', async () => {
    const id = devices[3]!.id;
    expect((await api('POST', `${url}/api/v1/devices/${id}/accept`, viewer)).status).toBe(403);
    expect((await api('POST', `${url}/api/v1/devices/${id}/accept`, operator)).body.status).toBe('accepted');
    expect((await api('POST', `${url}/api/v1/devices/${id}/accept`, operator)).body.status).toBe('accepted');
    expect((await api('POST', `${url}/api/v1/devices/${id}/reject`, operator)).body.status).toBe('rejected');
    expect((await api('DELETE', `${url}/api/v1/devices/${id}`, operator)).body.status).toBe('decommissioned');
    expect((await api('DELETE', `${url}/api/v1/devices/${id}`, operator)).status).toBe(200);
    const again = await api('POST', `${url}/api/v1/devices/${id}/accept`, operator);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('KX_CONFLICT');
    expect((await api('POST', `${url}/api/v1/devices/${'f'.repeat(24)}/accept`, operator)).status).toBe(404);
    expect((await api('GET', `${url}/api/v1/devices/not-an-id`, viewer)).status).toBe(400);
  });

  it('lets an accepted device read itself with an HTTP JWT, and nothing else', async () => {
    const [me, other] = devices as [TestDevice, TestDevice];
    const bearer = async (d: TestDevice, aud: 'kernex-http' | 'kernex-mqtt' = 'kernex-http') => ({
      authorization: `Bearer ${await d.jwt(aud)}`,
    });
    const myHeaders = await bearer(me);
    expect((await api('GET', `${url}/api/v1/devices/${me.id}`, myHeaders)).status).toBe(200);
    expect((await api('GET', `${url}/api/v1/devices/${me.id}`, myHeaders)).status).toBe(200); // cached
    expect((await api('GET', `${url}/api/v1/devices/${other.id}`, myHeaders)).status).toBe(403);
    expect((await api('GET', `${url}/api/v1/devices`, myHeaders)).status).toBe(401);
    expect((await api('GET', `${url}/api/v1/devices/${me.id}`, await bearer(me, 'kernex-mqtt'))).status).toBe(401);
    const forged = { authorization: `Bearer ${await other.jwt('kernex-http', { deviceId: me.id })}` };
    expect((await api('GET', `${url}/api/v1/devices/${me.id}`, forged)).status).toBe(401);
    const pending = devices[4]!;
    expect((await api('GET', `${url}/api/v1/devices/${pending.id}`, await bearer(pending))).status).toBe(401);

    // Decommissioning drops the cached token at once.
    await api('DELETE', `${url}/api/v1/devices/${me.id}`, operator);
    expect((await api('GET', `${url}/api/v1/devices/${me.id}`, myHeaders)).status).toBe(401);
  });

  it('keeps enrollment tokens for admins, listed without their secret', async () => {
    expect((await api('POST', `${url}/api/v1/enrollment-tokens`, operator, { uses: 1, expiresInS: 60 })).status).toBe(403);
    expect((await api('POST', `${url}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 0, expiresInS: 60 })).status).toBe(400);
    const made = await api('POST', `${url}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 2, expiresInS: 60 });
    const list = await api('GET', `${url}/api/v1/enrollment-tokens?limit=1`, server.adminHeaders);
    expect(list.body.items[0]).toMatchObject({ id: made.body.id, uses: 2, usesLeft: 2, revokedAt: null });
    expect(JSON.stringify(list.body)).not.toContain(made.body.token);
    expect(list.body.nextCursor).toEqual(expect.any(String));
    const next = await api('GET', `${url}/api/v1/enrollment-tokens?limit=10&cursor=${list.body.nextCursor}`, server.adminHeaders);
    expect(next.body.items.map((t: { id: string }) => t.id)).not.toContain(made.body.id);
    expect((await api('DELETE', `${url}/api/v1/enrollment-tokens/${crypto.randomUUID()}`, server.adminHeaders)).status).toBe(404);
  });
});

describe('presence at start-up', () => {
  it('marks every device offline when the server starts: the broker remembers no one', async () => {
    const first = await startTestServer();
    try {
      const d = await makeDevice();
      await register(first.httpUrl, d);
      await first.sql`update devices set online = true where id = ${d.id}`;
      // As a server killed with its devices online leaves it; then the next start, alone on its database.
      await first.close();
      const second = await startServer(
        loadConfig({ DATABASE_URL: first.database.url, KERNEX_DATA_DIR: first.config.dataDir, KERNEX_HOST: '127.0.0.1', KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' }),
        pino({ level: 'silent' }),
      );
      const [row] = await second.sql`select online from devices where id = ${d.id}`;
      await second.close();
      expect(row!.online).toBe(false);
    } finally {
      await first.stop();
    }
  });
});
