import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Counter } from 'prom-client';
import { Errors } from '../errors.js';

/** The unauthenticated device registration route (DESIGN §2), limited much more strictly. */
export const REGISTER_ROUTE = '/api/v1/devices/register';
const WINDOW_MS = 60_000;

export interface RateLimitOptions {
  /** Requests per minute per API key (or device token), and per address without credentials. */
  perMin: number;
  /** Token-less requests, and failed requests, per minute per address to {@link REGISTER_ROUTE}. */
  registerPerMin: number;
  refused: Counter<'scope'>;
  /** A cluster's Redis (ioredis): counters are shared by every node (DESIGN §8); absent, each process counts alone. */
  redis?: unknown;
}

function bearer(req: FastifyRequest): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
}

/** Buckets are named by a hash, so no key or token sits in memory dumps or logs. */
const credentialBucket = (token: string): string => `cred:${createHash('sha256').update(token).digest('base64url').slice(0, 22)}`;

/**
 * Rate limits of the admin API, with @fastify/rate-limit's store and counters:
 * - each credential (API key or device token) gets `perMin` requests a minute;
 * - each address gets `perMin` a minute for requests without credentials, and
 *   requests refused with 401 count against the address too, so guessing keys
 *   from one address is stopped as fast as anonymous calls;
 * - `POST /api/v1/devices/register` (DESIGN §2), by URL, so it applies whoever writes the
 *   route: a request without an enrollment token costs one of `registerPerMin` a minute per
 *   address; a request bearing one costs nothing unless it fails, since a valid token is
 *   bounded by its own uses (1,000 devices behind one NAT register at once); failures cost one
 *   of another `registerPerMin` per address, and an address out of those is refused whatever
 *   it sends, so guessing tokens is as slow as registering without one. Counted once the
 *   body is parsed (preValidation), since the token is in the body;
 * - routes with `config.rateLimit: false` (health probes, metrics) are exempt.
 * Runs before authentication (register this plugin first), so a refused burst
 * costs no database lookup. Over the limit: 429 `KX_RATE_LIMITED` with `retry-after`.
 */
export const rateLimitPlugin = fp(async function rateLimitPlugin(app: FastifyInstance, opts: RateLimitOptions) {
  await app.register(rateLimit, { global: false, ...(opts.redis ? { redis: opts.redis as never, nameSpace: 'kernex-rl:', skipOnError: true } : {}) });

  const byCredential = app.createRateLimit({ max: opts.perMin, timeWindow: WINDOW_MS, keyGenerator: (req) => credentialBucket(bearer(req)!) });
  const byAddress = app.createRateLimit({ max: opts.perMin, timeWindow: WINDOW_MS, keyGenerator: (req) => `addr:${req.ip}` });
  const register = app.createRateLimit({ max: opts.registerPerMin, timeWindow: WINDOW_MS, keyGenerator: (req) => `register:${req.ip}` });
  const registerFailed = app.createRateLimit({ max: opts.registerPerMin, timeWindow: WINDOW_MS, keyGenerator: (req) => `register-failed:${req.ip}` });
  const isRegister = (req: FastifyRequest): boolean => req.method === 'POST' && req.routeOptions.url === REGISTER_ROUTE;
  const hasToken = (req: FastifyRequest): boolean => {
    const body = req.body as { enrollmentToken?: unknown } | null | undefined;
    return typeof body === 'object' && body !== null && typeof body.enrollmentToken === 'string';
  };

  const refuse = (scope: string, ttlInSeconds: number): never => {
    opts.refused.labels(scope).inc();
    const seconds = Math.max(1, ttlInSeconds);
    const err = new Errors.RATE_LIMITED(`${seconds} seconds`);
    Object.assign(err, { headers: { 'retry-after': String(seconds) } });
    throw err;
  };

  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config?.rateLimit === false) return;
    if (isRegister(req)) {
      // Before the body is read: an address out of failures is refused whatever it sends.
      const failed = await registerFailed(req, { increment: false });
      if (!failed.isAllowed && failed.remaining <= 0) refuse('register', failed.ttlInSeconds);
      return; // the rest once the body is parsed, below
    }

    const token = bearer(req);
    if (!token) {
      const r = await byAddress(req);
      if (!r.isAllowed && r.isExceeded) refuse('address', r.ttlInSeconds);
      return;
    }
    // An address that has used up its budget on refused credentials is refused before trying another.
    const seen = await byAddress(req, { increment: false });
    if (!seen.isAllowed && seen.remaining <= 0) refuse('address', seen.ttlInSeconds);
    const r = await byCredential(req);
    if (!r.isAllowed && r.isExceeded) refuse('credential', r.ttlInSeconds);
  });

  app.addHook('preValidation', async (req) => {
    if (!isRegister(req) || req.routeOptions.config?.rateLimit === false || hasToken(req)) return;
    const r = await register(req);
    if (!r.isAllowed && r.isExceeded) refuse('register', r.ttlInSeconds);
  });

  app.addHook('onResponse', async (req, reply) => {
    // A refused registration (bad body, proof or token) costs the address, but not a 429 itself.
    if (isRegister(req) && reply.statusCode >= 400 && reply.statusCode !== 429 && req.routeOptions.config?.rateLimit !== false) await registerFailed(req);
    if (reply.statusCode === 401 && bearer(req) && req.routeOptions.config?.rateLimit !== false) await byAddress(req);
  });
});
