import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

describe('limits of the HTTP edge on a real server', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      KERNEX_RATE_LIMIT_PER_MIN: '3',
      KERNEX_BODY_LIMIT_BYTES: '1024',
      KERNEX_CORS_ORIGINS: 'https://console.example.com',
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('answers 413 KX_PAYLOAD_TOO_LARGE to a body over KERNEX_BODY_LIMIT_BYTES', async () => {
    const { key } = await server.services.apiKeys.create('big-body', 'admin');
    const res = await fetch(`${server.httpUrl}/api/v1/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(2000), role: 'viewer' }),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ statusCode: 413, code: 'KX_PAYLOAD_TOO_LARGE' });
  });

  it('answers a CORS preflight from an allowed origin only', async () => {
    const preflight = (origin: string) =>
      fetch(`${server.httpUrl}/api/v1/api-keys`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      });
    const allowed = await preflight('https://console.example.com');
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://console.example.com');
    expect((await preflight('https://evil.example.com')).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers 429 with retry-after once a key has used its requests for the minute, and counts it in /metrics', async () => {
    const { key } = await server.services.apiKeys.create('bursty', 'admin');
    const call = () => fetch(`${server.httpUrl}/api/v1/api-keys`, { headers: { authorization: `Bearer ${key}` } });
    for (let i = 0; i < 3; i++) expect((await call()).status).toBe(200);
    const res = await call();
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await res.json()).toMatchObject({ statusCode: 429, code: 'KX_RATE_LIMITED', error: 'Too Many Requests' });
    for (let i = 0; i < 5; i++) expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${server.httpUrl}/metrics`)).text()).toMatch(/^kernex_http_rate_limited_total\{scope="credential"\} 1$/m);
  });
});
