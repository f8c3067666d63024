import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

// DESIGN §6: list endpoints page with `limit` and `cursor` and answer
// `{items, nextCursor}`; a malformed cursor is a 400.
describe("a device's executions list", () => {
  let server: TestServer;
  let deviceId: string;
  const deploymentIds: string[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    const token = await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 1, expiresInS: 600 });
    const device = await makeDevice();
    expect((await register(server.httpUrl, device, { enrollmentToken: token.body.token })).body.status).toBe('accepted');
    deviceId = device.id;
    for (const version of ['1.0.0', '1.0.1', '1.0.2']) {
      const up = await fetch(`${server.httpUrl}/api/v1/bundles`, {
        method: 'POST',
        body: await makeBundle({ name: 'paged', version }),
        headers: { ...server.adminHeaders, 'content-type': 'application/gzip' },
      });
      expect(up.status).toBe(201);
      const dep = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId: ((await up.json()) as { id: string }).id, target: { deviceIds: [deviceId] } });
      expect(dep.status).toBe(201);
      deploymentIds.push(dep.body.id as string);
    }
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('pages newest first with nextCursor, each execution once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 5; page++) {
      const res = await api('GET', `${server.httpUrl}/api/v1/devices/${deviceId}/executions?limit=1${cursor ? `&cursor=${cursor}` : ''}`, server.adminHeaders);
      expect(res.status).toBe(200);
      expect(res.body).toHaveProperty('nextCursor');
      seen.push(...(res.body.items as { deploymentId: string }[]).map((e) => e.deploymentId));
      cursor = res.body.nextCursor as string | null;
      if (!cursor) break;
    }
    expect(seen).toEqual([...deploymentIds].reverse());
  });

  it('answers 400 to a cursor it did not make', async () => {
    const res = await api('GET', `${server.httpUrl}/api/v1/devices/${deviceId}/executions?cursor=not-a-cursor`, server.adminHeaders);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ statusCode: 400, code: 'KX_VALIDATION' });
  });
});
