import Fastify, { type FastifyInstance } from 'fastify';
import { Registry, Counter } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { toErrorBody } from '../app.js';
import { rateLimitPlugin, REGISTER_ROUTE } from './rate-limit.plugin.js';

let app: FastifyInstance;
afterEach(async () => {
  await app?.close();
});

/** The plugin on a bare app with a stand-in for the registration route another part adds. */
async function appWith(perMin: number, registerPerMin: number) {
  app = Fastify();
  app.setErrorHandler((err, _req, reply) => {
    const { headers } = err as { headers?: Record<string, string> };
    if (headers) void reply.headers(headers);
    const body = toErrorBody(err as never);
    return reply.code(body.statusCode).send(body);
  });
  const refused = new Counter({ name: 'refused', help: 'h', labelNames: ['scope'], registers: [new Registry()] });
  await app.register(rateLimitPlugin, { perMin, registerPerMin, refused });
  // Stands in for the real route: a token other than 'good' is refused, as an unknown token is.
  app.post<{ Body: { enrollmentToken?: string } }>(REGISTER_ROUTE, async (req, reply) =>
    req.body?.enrollmentToken === undefined || req.body.enrollmentToken === 'good' ? { ok: true } : reply.code(401).send({}),
  );
  app.get('/thing', async () => ({ ok: true }));
  app.get('/probe', { config: { rateLimit: false } }, async () => ({ ok: true }));
  app.get('/secret', async (req, reply) => (req.headers.authorization === 'Bearer good' ? { ok: true } : reply.code(401).send({})));
  await app.ready();
  return { app, refused };
}

describe('rateLimitPlugin', () => {
  it('limits registration per address far below the general limit, with 429 and retry-after', async () => {
    const { refused } = await appWith(100, 2);
    const register = () => app.inject({ method: 'POST', url: REGISTER_ROUTE, payload: {} });
    expect((await register()).statusCode).toBe(200);
    expect((await register()).statusCode).toBe(200);
    const res = await register();
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.json()).toMatchObject({ statusCode: 429, code: 'KX_RATE_LIMITED', message: expect.stringMatching(/^too many requests, retry in \d+ seconds$/) });
    expect((await app.inject({ url: '/thing' })).statusCode).toBe(200);
    expect((await refused.get()).values).toEqual([expect.objectContaining({ labels: { scope: 'register' }, value: 1 })]);
  });

  it('does not count registrations bearing a valid enrollment token, but counts failed ones', async () => {
    await appWith(100, 2);
    const register = (payload: object) => app.inject({ method: 'POST', url: REGISTER_ROUTE, payload });
    for (let i = 0; i < 10; i++) expect((await register({ enrollmentToken: 'good' })).statusCode).toBe(200);
    expect((await register({})).statusCode).toBe(200);
    expect((await register({ enrollmentToken: 'guess-1' })).statusCode).toBe(401);
    expect((await register({ enrollmentToken: 'guess-2' })).statusCode).toBe(401);
    // Out of failures: refused whatever it sends next, a good token included.
    expect((await register({ enrollmentToken: 'good' })).statusCode).toBe(429);
  });

  it('counts each credential on its own', async () => {
    await appWith(2, 1);
    const as = (key: string) => app.inject({ url: '/thing', headers: { authorization: `Bearer ${key}` } });
    expect((await as('a')).statusCode).toBe(200);
    expect((await as('a')).statusCode).toBe(200);
    expect((await as('a')).statusCode).toBe(429);
    expect((await as('b')).statusCode).toBe(200);
  });

  it('stops an address that keeps sending wrong keys, whatever key it tries next', async () => {
    await appWith(2, 1);
    const as = (key: string) => app.inject({ url: '/secret', headers: { authorization: `Bearer ${key}` } });
    expect((await as('guess-1')).statusCode).toBe(401);
    expect((await as('guess-2')).statusCode).toBe(401);
    expect((await as('good')).statusCode).toBe(429);
  });

  it('never limits routes that opt out (probes, metrics)', async () => {
    await appWith(1, 1);
    for (let i = 0; i < 3; i++) expect((await app.inject({ url: '/probe' })).statusCode).toBe(200);
  });
});
