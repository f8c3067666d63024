import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, makeDevice, register } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

// DESIGN §2: the same key always yields the same id, so registration is
// idempotent: a known key is answered 200, whatever became of its token since.
describe('registering a known key again with its enrollment token', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  const token = async (uses: number): Promise<string> => {
    const res = await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses, expiresInS: 600 });
    expect(res.status).toBe(201);
    return res.body.token as string;
  };

  it('answers 200 accepted once the token is spent by that very registration', async () => {
    const enrollmentToken = await token(1);
    const device = await makeDevice();
    const first = await register(server.httpUrl, device, { enrollmentToken });
    expect(first.status).toBe(201);
    expect(first.body.status).toBe('accepted');

    const again = await register(server.httpUrl, device, { enrollmentToken });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ deviceId: device.id, status: 'accepted' });
  });

  it('answers 200 accepted after the token is revoked', async () => {
    const spent = await token(1);
    const device = await makeDevice();
    expect((await register(server.httpUrl, device, { enrollmentToken: spent })).status).toBe(201);
    const list = await api('GET', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders);
    const row = (list.body.items as { id: string; usesLeft: number; tokenPrefix: string }[]).find((t) => spent.startsWith(t.tokenPrefix));
    expect((await api('DELETE', `${server.httpUrl}/api/v1/enrollment-tokens/${row!.id}`, server.adminHeaders)).status).toBe(200);

    const again = await register(server.httpUrl, device, { enrollmentToken: spent });
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('accepted');
  });

  it('still refuses a spent token for a new key and for a pending one', async () => {
    const enrollmentToken = await token(1);
    expect((await register(server.httpUrl, await makeDevice(), { enrollmentToken })).status).toBe(201);

    const fresh = await register(server.httpUrl, await makeDevice(), { enrollmentToken });
    expect(fresh.status).toBe(401);
    expect(fresh.body).toMatchObject({ statusCode: 401, code: 'KX_ENROLLMENT_TOKEN_INVALID' });

    const pending = await makeDevice();
    expect((await register(server.httpUrl, pending)).body.status).toBe('pending');
    expect((await register(server.httpUrl, pending, { enrollmentToken })).status).toBe(401);
  });
});
