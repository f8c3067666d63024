import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Errors } from '../errors.js';
import type { ApiKeysService } from '../services/api-keys.service.js';
import { roleAllows, type Access, type Role } from './roles.js';

/** Who made a request. */
export type Principal =
  | { kind: 'apiKey'; keyId: string; name: string; role: Role }
  | { kind: 'device'; deviceId: string };

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
  apiKeys: Pick<ApiKeysService, 'verify'>;
  verifyDeviceToken?: DeviceTokenVerifier;
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
    if (!token) throw new Errors.UNAUTHORIZED('missing Authorization: Bearer credentials');

    const role: Role | undefined = typeof access === 'string' ? access : access.role;
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
