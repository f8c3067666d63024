import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import type { ApiKeysService } from '../services/api-keys.service.js';
import { authPlugin } from './auth.plugin.js';

/** A hand-written fake: one admin key and one viewer key. */
const fakeKeys: Pick<ApiKeysService, 'verify'> = {
  async verify(key: string) {
    const row = { keyPrefix: key.slice(0, 8), createdAt: new Date(0), lastUsedAt: null, revokedAt: null };
    if (key === 'admin-key') return { ...row, id: '1', name: 'a', role: 'admin' };
    if (key === 'viewer-key') return { ...row, id: '2', name: 'v', role: 'viewer' };
    return undefined;
  },
};

async function appWith(register: (app: ReturnType<typeof Fastify>) => void) {
  const app = Fastify();
  await app.register(authPlugin, { apiKeys: fakeKeys });
  register(app);
  await app.ready();
  return app;
}

describe('authPlugin', () => {
  it('refuses to start with a route that declares no access rule', async () => {
    await expect(appWith((app) => app.get('/open', async () => 'open'))).rejects.toThrow(
      'route GET /open declares no access rule (config.access)',
    );
  });

  it('answers 401 without a key, 401 for an unknown key, 403 for a role too low', async () => {
    const app = await appWith((app) => app.post('/x', { config: { access: 'operator' } }, async () => 'ok'));
    expect((await app.inject({ method: 'POST', url: '/x' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/x', headers: { authorization: 'Bearer nope' } })).statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/x', headers: { authorization: 'Bearer viewer-key' } })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/x', headers: { authorization: 'Bearer admin-key' } })).statusCode).toBe(200);
  });
});
