import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

// DESIGN §6: every change asked through the API is in the audit log, refusals
// included (result `failure`). An id PostgreSQL cannot hold must not make the
// entry itself fail to be written.
describe('audit entries of requests naming an id with a NUL', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('records the refused change, its target kept readable', async () => {
    const refused = await api('DELETE', `${server.httpUrl}/api/v1/api-keys/probe%00id`, server.adminHeaders);
    expect(refused.status).toBe(400);
    const audit = await api('GET', `${server.httpUrl}/api/v1/audit?limit=10`, server.adminHeaders);
    expect(audit.status).toBe(200);
    const entry = (audit.body.items as { route: string; method: string; targetId: string | null; result: string; statusCode: number }[]).find(
      (e) => e.method === 'DELETE' && e.route === '/api/v1/api-keys/:id',
    );
    expect(entry).toMatchObject({ result: 'failure', statusCode: 400, targetId: 'probe\\u0000id' });
  });
});
