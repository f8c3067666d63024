import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

// DESIGN §6: errors are JSON {statusCode, code, error, message} with the
// server's own stable codes, also when the router itself refuses the URL.
describe('a URL whose path does not decode', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  for (const path of ['/api/v1/devices/%ED%A0%80', '/api/v1/enrollment-tokens/%FF', '/api/v1/bundles/%E0%A4%A']) {
    it(`answers 400 KX_VALIDATION in the contract's shape for ${path}`, async () => {
      const res = await fetch(`${server.httpUrl}${path}`, { headers: server.adminHeaders });
      expect(res.status).toBe(400);
      const body = (await res.json()) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
      expect(body).toMatchObject({ statusCode: 400, code: 'KX_VALIDATION', error: 'Bad Request' });
    });
  }
});
