import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/** Signs in with `apiKey`; answers status, body and the cookie pair (`kx_session=...`). */
async function signIn(server: TestServer, apiKey: string): Promise<{ status: number; body: any; setCookie: string | null; cookie: string }> {
  const res = await fetch(`${server.httpUrl}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiKey }) });
  const setCookie = res.headers.get('set-cookie');
  return { status: res.status, body: await res.json(), setCookie, cookie: setCookie?.split(';')[0] ?? '' };
}

describe('console sessions (DESIGN §9)', () => {
  let server: TestServer;
  let viewerKey: { id: string; key: string };

  beforeAll(async () => {
    server = await startTestServer();
    const res = await api('POST', `${server.httpUrl}/api/v1/api-keys`, server.adminHeaders, { name: 'watcher', role: 'viewer' });
    viewerKey = res.body;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('exchanges an API key for an HttpOnly, SameSite=Strict, Path=/ cookie and answers the role', async () => {
    const s = await signIn(server, server.adminKey);
    expect(s.status).toBe(201);
    expect(s.body.role).toBe('admin');
    expect(Date.parse(s.body.expiresAt)).toBeGreaterThan(Date.now());
    const attrs = s.setCookie!.split(';').map((a) => a.trim().toLowerCase());
    expect(attrs).toEqual(expect.arrayContaining(['httponly', 'samesite=strict', 'path=/']));
    // The cookie holds a random secret, not the key.
    expect(s.setCookie).not.toContain(server.adminKey);
  });

  it('refuses a bad key with 401 and sets no cookie', async () => {
    const s = await signIn(server, 'kx_not-a-key');
    expect(s.status).toBe(401);
    expect(s.body.code).toBe('KX_UNAUTHORIZED');
    expect(s.setCookie).toBeNull();
  });

  it('authenticates admin API reads with the role of the key it was made from', async () => {
    const s = await signIn(server, viewerKey.key);
    expect(s.body.role).toBe('viewer');
    expect((await api('GET', `${server.httpUrl}/api/v1/devices`, { cookie: s.cookie })).status).toBe(200);
    expect((await api('GET', `${server.httpUrl}/api/v1/session`, { cookie: s.cookie })).body).toMatchObject({ role: 'viewer', keyName: 'watcher', expiresAt: s.body.expiresAt });
    expect((await api('GET', `${server.httpUrl}/api/v1/session`, server.adminHeaders)).body).toMatchObject({ role: 'admin', expiresAt: null });
    // A viewer's cookie may not do what a viewer's key may not.
    const made = await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, { cookie: s.cookie, 'x-kernex-csrf': '1' }, { uses: 1, expiresInS: 60 });
    expect(made.status).toBe(403);
    expect(made.body.code).toBe('KX_FORBIDDEN');
  });

  it('refuses a change made with the cookie without the CSRF header, or from another origin', async () => {
    const s = await signIn(server, server.adminKey);
    const url = `${server.httpUrl}/api/v1/enrollment-tokens`;
    const body = { uses: 1, expiresInS: 60 };
    const bare = await api('POST', url, { cookie: s.cookie }, body);
    expect(bare.status).toBe(403);
    expect(bare.body.code).toBe('KX_CSRF');
    const foreign = await api('POST', url, { cookie: s.cookie, 'x-kernex-csrf': '1', origin: 'https://evil.example' }, body);
    expect(foreign.status).toBe(403);
    expect(foreign.body.code).toBe('KX_CSRF');
    const own = await api('POST', url, { cookie: s.cookie, 'x-kernex-csrf': '1', origin: server.httpUrl }, body);
    expect(own.status).toBe(201);
    // Nothing was made by the refused requests: exactly one token exists.
    const list = await api('GET', url, server.adminHeaders);
    expect(list.body.items).toHaveLength(1);
  });

  it('ends the session on sign-out: the old cookie answers 401 from then on', async () => {
    const s = await signIn(server, server.adminKey);
    expect((await api('GET', `${server.httpUrl}/api/v1/devices`, { cookie: s.cookie })).status).toBe(200);
    const out = await fetch(`${server.httpUrl}/api/v1/session`, { method: 'DELETE', headers: { cookie: s.cookie, 'x-kernex-csrf': '1' } });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^kx_session=;.*Max-Age=0/i);
    const after = await api('GET', `${server.httpUrl}/api/v1/devices`, { cookie: s.cookie });
    expect(after.status).toBe(401);
    expect(after.body.code).toBe('KX_UNAUTHORIZED');
  });

  it('answers 401 to the cookie once its key is revoked', async () => {
    const made = await api('POST', `${server.httpUrl}/api/v1/api-keys`, server.adminHeaders, { name: 'short-lived', role: 'operator' });
    const s = await signIn(server, made.body.key);
    expect((await api('GET', `${server.httpUrl}/api/v1/devices`, { cookie: s.cookie })).status).toBe(200);
    expect((await api('DELETE', `${server.httpUrl}/api/v1/api-keys/${made.body.id}`, server.adminHeaders)).status).toBe(200);
    expect((await api('GET', `${server.httpUrl}/api/v1/devices`, { cookie: s.cookie })).status).toBe(401);
  });

  it('keeps sessions in PostgreSQL, hashed: the cookie secret is not stored', async () => {
    const s = await signIn(server, server.adminKey);
    const secret = s.cookie.split('=')[1]!;
    const rows = await server.sql`select token_hash from console_sessions`;
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.map((r) => r.token_hash)).not.toContain(secret);
  });
});
