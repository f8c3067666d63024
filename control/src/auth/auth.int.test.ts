import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

describe('admin API keys', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('lets public routes through without a key', async () => {
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
  });

  it('checks the key and the role', async () => {
    const viewer = await server.services.apiKeys.create('v', 'viewer');
    expect(viewer.key).toMatch(/^kx_[A-Za-z0-9_-]{43}$/);
    expect(await server.services.apiKeys.verify(viewer.key)).toMatchObject({ role: 'viewer', name: 'v' });
    expect(await server.services.apiKeys.verify(server.adminKey)).toMatchObject({ role: 'admin' });
    expect(await server.services.apiKeys.verify('kx_unknown')).toBeUndefined();
    const [stored] = await server.sql`select key_hash from api_keys where id = ${viewer.row.id}`;
    expect(stored!.key_hash).not.toContain(viewer.key);
  });
});
