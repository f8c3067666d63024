import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES, roleAllows, type Role } from '../auth/roles.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';
import type { RouteEntry } from './route-table.plugin.js';

/** Routes of the API itself: not the docs UI's or the console's files, not the HEAD twins fastify adds, not CORS preflight. */
const apiRoutes = (server: TestServer): RouteEntry[] =>
  server.app.routeTable.filter((r) => !r.url.startsWith('/docs') && !r.url.startsWith('/console') && r.url !== '/' && r.method !== 'HEAD' && r.method !== 'OPTIONS');

/**
 * Who may call each route, written out from DESIGN §6 (and §2 for device JWTs), not read from the
 * routes' own config: viewer reads; operator also uploads bundles, runs deployments and decides on
 * devices (accept, reject, rename/tag, decommission); admin also manages API keys, enrollment tokens
 * and reads the audit log. A new route must be added here by hand, from the DESIGN. `device` means a device JWT is let in too. A route the server has and this
 * table lacks, or the other way round, fails the first test below.
 */
type Expected = 'public' | Role | 'viewer or device';
const EXPECTED_ACCESS: Record<string, Expected> = {
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'GET /metrics': 'public',
  'POST /api/v1/devices/register': 'public',
  'GET /api/v1/devices': 'viewer',
  'GET /api/v1/devices/:id': 'viewer or device',
  'GET /api/v1/devices/:id/telemetry': 'viewer',
  'PATCH /api/v1/devices/:id': 'operator',
  'POST /api/v1/devices/:id/accept': 'operator',
  'POST /api/v1/devices/:id/reject': 'operator',
  'DELETE /api/v1/devices/:id': 'operator',
  'GET /api/v1/bundles': 'viewer',
  'GET /api/v1/bundles/:id': 'viewer',
  'GET /api/v1/bundles/:id/blob': 'viewer or device',
  // DESIGN §4 "Delta transfer": B's index and the delta A→B, fetched like the blob.
  'GET /api/v1/bundles/:id/index': 'viewer or device',
  'GET /api/v1/bundles/:id/deltas/:fromId/blob': 'viewer or device',
  'POST /api/v1/bundles': 'operator',
  'DELETE /api/v1/bundles/:id': 'operator',
  'GET /api/v1/deployments': 'viewer',
  'GET /api/v1/deployments/:id': 'viewer',
  'GET /api/v1/deployments/:id/executions': 'viewer',
  'POST /api/v1/deployments': 'operator',
  'POST /api/v1/deployments/:id/cancel': 'operator',
  'GET /api/v1/api-keys': 'admin',
  'POST /api/v1/api-keys': 'admin',
  'DELETE /api/v1/api-keys/:id': 'admin',
  'GET /api/v1/enrollment-tokens': 'admin',
  'POST /api/v1/enrollment-tokens': 'admin',
  'DELETE /api/v1/enrollment-tokens/:id': 'admin',
  'GET /api/v1/audit': 'admin',
  // DESIGN §6 (events) and §9 (console): reads are viewer; signing in is public, a session is any role's own.
  'GET /api/v1/events': 'viewer',
  'GET /api/v1/fleet/summary': 'viewer',
  'GET /api/v1/fleet/target-count': 'viewer',
  'GET /api/v1/deployments/:id/phases': 'viewer',
  'GET /api/v1/devices/:id/executions': 'viewer',
  'GET /api/v1/devices/:id/telemetry/series': 'viewer',
  'POST /api/v1/session': 'public',
  'GET /api/v1/session': 'viewer',
  'DELETE /api/v1/session': 'viewer',
  // DESIGN §8: the nodes of a cluster (a single node lists itself).
  'GET /api/v1/nodes': 'viewer',
};
const routeName = (r: RouteEntry): string => `${r.method} ${r.url}`;
const expectedRole = (r: RouteEntry): Role | undefined => {
  const want = EXPECTED_ACCESS[routeName(r)];
  return want === 'public' || want === undefined ? undefined : want === 'viewer or device' ? 'viewer' : want;
};

const concretePath = (url: string): string => url.replace(/:id\b/g, randomUUID()).replace(/:[A-Za-z]+/g, 'x');

describe('every route has an access rule, schemas and a role check (real HTTP)', () => {
  let server: TestServer;
  const keys = {} as Record<Role, string>;
  beforeAll(async () => {
    server = await startTestServer();
    for (const role of ROLES) keys[role] = (await server.services.apiKeys.create(`matrix-${role}`, role)).key;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('serves exactly the routes of the DESIGN §6 access table, no more and no fewer', () => {
    const served = apiRoutes(server).map(routeName).sort();
    expect(served).toEqual(Object.keys(EXPECTED_ACCESS).sort());
  });

  it('declares on every route the access the DESIGN §6 table gives it', () => {
    const declared = Object.fromEntries(
      apiRoutes(server).map((r) => {
        const a = r.access;
        const d: Expected | string = typeof a === 'object' ? (a.device && a.role ? `${a.role} or device` : JSON.stringify(a)) : String(a);
        return [routeName(r), d];
      }),
    );
    expect(declared).toEqual(EXPECTED_ACCESS);
  });

  it('declares an access rule on every route', () => {
    const missing = apiRoutes(server).filter((r) => r.access === undefined);
    expect(missing.map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });

  it('declares a success response schema on every route', () => {
    const lacking = apiRoutes(server).filter((r) => {
      const codes = Object.keys((r.schema?.response as Record<string, unknown> | undefined) ?? {});
      return !codes.some((c) => /^2(\d\d|xx)$/.test(c));
    });
    expect(lacking.map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });

  it('refuses unknown fields at every level of every body and query schema (DESIGN §6)', () => {
    const open: string[] = [];
    const walk = (node: unknown, where: string): void => {
      if (node === null || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      // An object schema that lists its properties must refuse others; a free-form object
      // (registration's `hardware`) lists none and is bounded by its size and depth instead.
      if (n.properties !== undefined && n.additionalProperties !== false) open.push(where);
      for (const [k, v] of Object.entries(n)) walk(v, k === 'properties' ? where : `${where}.${k}`);
    };
    for (const r of apiRoutes(server)) {
      if (r.schema?.body) walk(r.schema.body, `${r.method} ${r.url} body`);
      if (r.schema?.querystring) walk(r.schema.querystring, `${r.method} ${r.url} query`);
    }
    expect(open).toEqual([]);
  });

  it('documents every route in the OpenAPI document at /docs/json, with its security', async () => {
    const res = await fetch(`${server.httpUrl}/docs/json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { responses?: object; security?: unknown[] }>> };
    expect(doc.openapi).toMatch(/^3\./);
    for (const r of apiRoutes(server)) {
      const op = doc.paths[r.url.replace(/:([A-Za-z]+)/g, '{$1}')]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${r.url}`).toBeDefined();
      expect(Object.keys(op!.responses ?? {}), `${r.method} ${r.url}`).toEqual(expect.arrayContaining(['4XX', '5XX']));
      expect(op!.security, `${r.method} ${r.url}`).toEqual(EXPECTED_ACCESS[routeName(r)] === 'public' ? [] : expect.arrayContaining([expect.any(Object)]));
    }
    const ui = await fetch(`${server.httpUrl}/docs`, { redirect: 'follow' });
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
    // Served over plain HTTP in a LAN, the UI must not ask browsers to upgrade its assets to HTTPS.
    expect(ui.headers.get('content-security-policy')).not.toContain('upgrade-insecure-requests');
  });

  it('answers 401 without a key, 403 below the role and lets the role through, on every route', async () => {
    const wrong: string[] = [];
    for (const r of apiRoutes(server)) {
      const path = concretePath(r.url);
      const hasBody = ['POST', 'PATCH', 'PUT'].includes(r.method);
      const call = async (key?: string): Promise<number> => {
        const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
        if (hasBody) headers['content-type'] = 'application/json';
        const res = await fetch(`${server.httpUrl}${path}`, { method: r.method, headers, body: hasBody ? '{}' : undefined });
        // The live event stream never ends by itself (DESIGN §6): its status is enough.
        if (res.headers.get('content-type')?.startsWith('text/event-stream')) await res.body?.cancel();
        else await res.arrayBuffer();
        return res.status;
      };
      const anonymous = await call();
      if (EXPECTED_ACCESS[routeName(r)] === 'public') {
        if (anonymous === 401 || anonymous === 403) wrong.push(`${r.method} ${r.url}: public but ${anonymous}`);
        continue;
      }
      if (anonymous !== 401) wrong.push(`${r.method} ${r.url}: no key gave ${anonymous}`);
      if ((await call('kx_not-a-key')) !== 401) wrong.push(`${r.method} ${r.url}: a wrong key was not 401`);
      const need = expectedRole(r);
      for (const role of ROLES) {
        const status = await call(keys[role]);
        const allowed = need !== undefined && roleAllows(role, need);
        if (allowed && (status === 401 || status === 403)) wrong.push(`${r.method} ${r.url}: ${role} refused with ${status}`);
        if (!allowed && status !== 403) wrong.push(`${r.method} ${r.url}: ${role} got ${status}, not 403`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('refuses a revoked key with 401 at once', async () => {
    const { key, row } = await server.services.apiKeys.create('short-lived', 'viewer');
    const get = () => fetch(`${server.httpUrl}/api/v1/audit`, { headers: { authorization: `Bearer ${key}` } });
    expect((await get()).status).toBe(403);
    await server.services.apiKeys.revoke(row.id);
    const res = await get();
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ statusCode: 401, code: 'KX_UNAUTHORIZED', error: 'Unauthorized', message: 'invalid or revoked API key' });
  });

  it('sets security headers on every answer', async () => {
    const res = await fetch(`${server.httpUrl}/healthz`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('content-security-policy')).not.toContain('upgrade-insecure-requests');
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});
