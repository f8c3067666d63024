import type { FastifyInstance } from 'fastify';
import { ROLES } from '../auth/roles.js';
import { clearSessionCookie, sessionCookie, sessionSetCookie } from '../auth/session-cookie.js';
import type { SessionsService } from '../auth/sessions.service.js';
import { Errors } from '../errors.js';
import { dateTime, errorResponses } from '../http/schemas.js';

const sessionSchema = {
  type: 'object',
  required: ['role', 'expiresAt'],
  properties: {
    role: { type: 'string', enum: ROLES },
    expiresAt: dateTime,
    keyName: { type: 'string', description: 'name of the API key the session was made from' },
  },
} as const;

/**
 * Console sign-in (DESIGN §9): an API key is exchanged for an HttpOnly,
 * SameSite=Strict cookie; the browser never keeps the key itself.
 */
export async function sessionRoutes(app: FastifyInstance, opts: { sessions: SessionsService; secure: boolean }): Promise<void> {
  const { sessions, secure } = opts;

  app.post<{ Body: { apiKey: string } }>(
    '/api/v1/session',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Sign in to the console: exchange an API key for a session cookie',
        body: {
          type: 'object',
          required: ['apiKey'],
          additionalProperties: false,
          properties: { apiKey: { type: 'string', minLength: 1, maxLength: 256 } },
        },
        response: { 201: sessionSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const s = await sessions.create(req.body.apiKey);
      if (!s) throw new Errors.UNAUTHORIZED('invalid or revoked API key');
      // The audit entry names who signed in.
      req.principal = { kind: 'apiKey', keyId: s.keyId, name: s.keyName, role: s.role, session: true };
      void reply.header('set-cookie', sessionSetCookie(s.token, s.expiresAt, secure)).header('cache-control', 'no-store');
      return reply.code(201).send({ role: s.role, expiresAt: s.expiresAt.toISOString(), keyName: s.keyName });
    },
  );

  app.get(
    '/api/v1/session',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'Who the caller is: role, key name and, for a session, when it expires (null for a bearer key)',
        response: { 200: { ...sessionSchema, properties: { ...sessionSchema.properties, expiresAt: { ...dateTime, type: ['string', 'null'] } } }, ...errorResponses },
      },
    },
    async (req) => {
      const p = req.principal;
      if (p?.kind !== 'apiKey') throw new Errors.UNAUTHORIZED('no session');
      const cookie = sessionCookie(req);
      const live = p.session && cookie ? await sessions.verify(cookie) : undefined;
      return { role: p.role, keyName: p.name, expiresAt: live?.expiresAt.toISOString() ?? null };
    },
  );

  app.delete(
    '/api/v1/session',
    {
      config: { access: 'viewer' },
      schema: { summary: 'Sign out: end the session on the server and drop the cookie', response: { 204: { type: 'null' }, ...errorResponses } },
    },
    async (req, reply) => {
      const cookie = sessionCookie(req);
      if (cookie) await sessions.end(cookie);
      return reply.code(204).header('set-cookie', clearSessionCookie(secure)).send();
    },
  );
}
