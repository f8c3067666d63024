import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Errors } from '../errors.js';
import type { ApiKeysService } from './api-keys.service.js';
import type { Principal } from './principal.js';
import { roleAllows, type Access, type Role } from './roles.js';
import { checkCsrf, sessionCookie } from './session-cookie.js';
import type { SessionsService } from './sessions.service.js';


declare module 'fastify' {
  interface FastifyContextConfig {
    /** Required on every route; the server refuses to start with a route that lacks it. */
    access?: Access;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** Verifies a device's HTTP JWT (aud kernex-http); supplied by the device-identity part. */
export type DeviceTokenVerifier = (token: string) => Promise<{ deviceId: string } | undefined>;

export interface AuthOptions {
  apiKeys: ApiKeysService;
  verifyDeviceToken?: DeviceTokenVerifier;
  /** Console sessions (DESIGN §9): the cookie stands for the key it was made from. */
  sessions?: SessionsService;
}

function bearer(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

/** A JWT has three dot-separated parts; API keys have none. */
const looksLikeJwt = (token: string): boolean => token.split('.').length === 3;

/**
 * Enforces `config.access` on every route (DESIGN §6). Routes without an
 * access rule are refused at registration, so none can be open by accident.
 */
export const authPlugin = fp(async function authPlugin(app: FastifyInstance, opts: AuthOptions) {
  app.decorateRequest('principal', undefined);

  app.addHook('onRoute', (route) => {
    const access = (route.config as { access?: Access } | undefined)?.access;
    if (access === undefined && !route.url.startsWith('/docs')) {
      throw new Error(`route ${route.method} ${route.url} declares no access rule (config.access)`);
    }
  });

  app.addHook('onRequest', async (req) => {
    const access = req.routeOptions.config.access ?? (req.url.startsWith('/docs') ? 'public' : undefined);
    if (access === 'public') return;
    if (access === undefined) return; // 404s: the not-found handler answers
    const token = bearer(req);
    const role: Role | undefined = typeof access === 'string' ? access : access.role;
    const cookie = !token && opts.sessions ? sessionCookie(req) : undefined;
    if (cookie && opts.sessions && role) {
      // A bearer header wins; the cookie is the console's (DESIGN §9), CSRF-checked first.
      checkCsrf(req);
      const s = await opts.sessions.verify(cookie);
      if (!s) throw new Errors.UNAUTHORIZED('the console session has ended or expired, or its key was revoked; sign in again');
      req.principal = { kind: 'apiKey', keyId: s.apiKeyId, name: s.keyName, role: s.role, session: true };
      if (!roleAllows(s.role, role)) throw new Errors.FORBIDDEN(`this needs the ${role} role; the session has ${s.role}`);
      return;
    }
    if (!token) throw new Errors.UNAUTHORIZED('missing Authorization: Bearer credentials');

    const deviceAllowed = typeof access === 'object' && access.device;

    if (deviceAllowed && looksLikeJwt(token) && opts.verifyDeviceToken) {
      const device = await opts.verifyDeviceToken(token);
      if (!device) throw new Errors.UNAUTHORIZED('invalid device token');
      req.principal = { kind: 'device', deviceId: device.deviceId };
      return;
    }

    const key = await opts.apiKeys.verify(token);
    if (!key) throw new Errors.UNAUTHORIZED('invalid or revoked API key');
    req.principal = { kind: 'apiKey', keyId: key.id, name: key.name, role: key.role };
    if (!role) throw new Errors.FORBIDDEN('this route is for devices');
    if (!roleAllows(key.role, role)) {
      throw new Errors.FORBIDDEN(`this needs the ${role} role; the key has ${key.role}`);
    }
  });
});
