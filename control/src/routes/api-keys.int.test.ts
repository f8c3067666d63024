import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

interface KeyView {
  id: string;
  name: string;
  role: string;
  keyPrefix: string;
  key?: string;
  revokedAt: string | null;
}
interface AuditView {
  actor: { kind: string; id: string | null; name: string | null };
  action: string;
  targetId: string | null;
  statusCode: number;
  result: string;
  errorCode: string | null;
}

describe('/api/v1/api-keys and the audit log', () => {
  let server: TestServer;
  let api: (method: string, path: string, body?: unknown, key?: string) => Promise<{ status: number; body: any }>;
  beforeAll(async () => {
    server = await startTestServer();
    api = async (method, path, body, key = server.adminKey) => {
      const headers: Record<string, string> = { authorization: `Bearer ${key}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${server.httpUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };
  });
  afterAll(async () => {
    await server?.stop();
  });

  const audit = async (): Promise<AuditView[]> => (await api('GET', '/api/v1/audit?limit=500')).body.items;

  it('creates a key, shows its secret once, stores only a hash, and the key works at once', async () => {
    const created = await api('POST', '/api/v1/api-keys', { name: 'ci', role: 'operator' });
    expect(created.status).toBe(201);
    const view = created.body as KeyView;
    expect(view).toMatchObject({ name: 'ci', role: 'operator', revokedAt: null });
    expect(view.key).toMatch(/^kx_[A-Za-z0-9_-]{43}$/);
    expect(view.key!.startsWith(view.keyPrefix)).toBe(true);

    const [stored] = await server.sql`select key_hash from api_keys where id = ${view.id}`;
    expect(stored!.key_hash).not.toContain(view.key!.slice(3));

    const listed = (await api('GET', '/api/v1/api-keys')).body.items as KeyView[];
    const again = listed.find((k) => k.id === view.id)!;
    expect(again).toMatchObject({ name: 'ci', role: 'operator' });
    expect(again).not.toHaveProperty('key');
    expect(JSON.stringify(listed)).not.toContain(view.key);

    expect((await api('GET', '/api/v1/api-keys', undefined, view.key)).status).toBe(403);
  });

  it('revokes a key: its next request is 401', async () => {
    const { body: k } = await api('POST', '/api/v1/api-keys', { name: 'temp', role: 'admin' });
    expect((await api('GET', '/api/v1/api-keys', undefined, k.key)).status).toBe(200);
    const revoked = await api('DELETE', `/api/v1/api-keys/${k.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).toEqual(expect.any(String));
    expect((await api('GET', '/api/v1/api-keys', undefined, k.key)).status).toBe(401);
  });

  it('refuses to revoke the last active admin key with 409', async () => {
    const admins = ((await api('GET', '/api/v1/api-keys?limit=500')).body.items as KeyView[]).filter((k) => k.role === 'admin' && !k.revokedAt);
    expect(admins).toHaveLength(1);
    const res = await api('DELETE', `/api/v1/api-keys/${admins[0]!.id}`);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'KX_CONFLICT', message: expect.stringContaining('last active admin key') });
  });

  it('answers 400 naming the field for bad bodies and queries, 404 for an unknown key', async () => {
    expect((await api('POST', '/api/v1/api-keys', { role: 'admin' })).body).toMatchObject({ statusCode: 400, code: 'KX_VALIDATION', message: 'body.name is required' });
    expect((await api('POST', '/api/v1/api-keys', { name: 'x', role: 'root' })).body.message).toBe('body.role must be one of viewer, operator, admin');
    expect((await api('GET', '/api/v1/api-keys?limit=0')).body.message).toBe('query.limit must be >= 1');
    expect((await api('GET', '/api/v1/api-keys?cursor=zzz')).body.message).toBe('query.cursor is not a cursor this server made');
    expect((await api('DELETE', '/api/v1/api-keys/not-a-uuid')).body.message).toBe('params.id must be a UUID such as 2861e1f1-14b1-421d-9fb5-8828877cb4f1');
    const missing = await api('DELETE', '/api/v1/api-keys/00000000-0000-4000-8000-000000000000');
    expect(missing).toMatchObject({ status: 404, body: { code: 'KX_NOT_FOUND' } });
  });

  it('pages the key list with limit and an opaque cursor, each key once', async () => {
    for (let i = 0; i < 5; i++) await api('POST', '/api/v1/api-keys', { name: `page-${i}`, role: 'viewer' });
    const all = (await api('GET', '/api/v1/api-keys?limit=500')).body.items as KeyView[];
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: KeyView[]; nextCursor: string | null } = (await api('GET', `/api/v1/api-keys?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).body;
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((k) => k.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(all.map((k) => k.id));
  });

  it('writes an audit entry for each change, success or refusal, and none for reads', async () => {
    const before = (await audit()).length;
    const viewer = (await api('POST', '/api/v1/api-keys', { name: 'auditee', role: 'viewer' })).body as KeyView;
    await api('GET', '/api/v1/api-keys');
    await api('POST', '/api/v1/api-keys', { name: 'nope', role: 'viewer' }, viewer.key);
    await api('DELETE', `/api/v1/api-keys/${viewer.id}`, undefined, 'kx_wrong');
    await api('DELETE', `/api/v1/api-keys/${viewer.id}`);

    const entries = await audit();
    expect(entries).toHaveLength(before + 4);
    const [revoke, anonymous, forbidden, create] = entries;
    const adminKeyId = (await server.services.apiKeys.verify(server.adminKey))!.id;
    expect(create).toMatchObject({
      actor: { kind: 'apiKey', id: adminKeyId, name: 'bootstrap (KERNEX_ADMIN_KEY)' },
      action: 'POST /api/v1/api-keys',
      targetId: viewer.id,
      statusCode: 201,
      result: 'success',
      errorCode: null,
    });
    expect(forbidden).toMatchObject({ actor: { kind: 'apiKey', id: viewer.id, name: 'auditee' }, statusCode: 403, result: 'failure', errorCode: 'KX_FORBIDDEN' });
    expect(anonymous).toMatchObject({ actor: { kind: 'anonymous', id: null }, action: 'DELETE /api/v1/api-keys/:id', targetId: viewer.id, statusCode: 401, result: 'failure' });
    expect(revoke).toMatchObject({ actor: { id: adminKeyId }, action: 'DELETE /api/v1/api-keys/:id', targetId: viewer.id, statusCode: 200, result: 'success' });
  });

  it('pages and filters the audit log', async () => {
    const first = (await api('GET', '/api/v1/audit?limit=1&result=failure')).body;
    expect(first.items).toHaveLength(1);
    expect(first.items[0].result).toBe('failure');
    const second = (await api('GET', `/api/v1/audit?limit=1&result=failure&cursor=${first.nextCursor}`)).body;
    expect(Number(second.items[0].id)).toBeLessThan(Number(first.items[0].id));
  });
});
