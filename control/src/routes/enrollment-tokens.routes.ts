import type { FastifyInstance } from 'fastify';
import type { EnrollmentTokensService } from '../services/enrollment-tokens.service.js';
import { pageQueryProperties, pageSchema } from '../paging.js';
import { uuidParams } from '../http/schemas.js';
import { tagsSchema } from './devices.schemas.js';

const tokenSchema = {
  type: 'object',
  required: ['id', 'tokenPrefix', 'uses', 'usesLeft', 'tags', 'expiresAt', 'createdAt', 'revokedAt'],
  properties: {
    id: { type: 'string' },
    tokenPrefix: { type: 'string' },
    uses: { type: 'integer' },
    usesLeft: { type: 'integer' },
    tags: { type: 'array', items: { type: 'string' } },
    expiresAt: { type: 'string', format: 'date-time' },
    createdAt: { type: 'string', format: 'date-time' },
    revokedAt: { anyOf: [{ type: 'string', format: 'date-time' }, { type: 'null' }] },
  },
} as const;


/** Enrollment tokens (DESIGN §2): admins make, list and revoke them. */
export async function enrollmentTokensRoutes(app: FastifyInstance, opts: { tokens: EnrollmentTokensService }): Promise<void> {
  const { tokens } = opts;

  app.post<{ Body: { uses: number; expiresInS: number; tags?: string[] } }>(
    '/api/v1/enrollment-tokens',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Make an enrollment token; the token itself is in this answer only',
        body: {
          type: 'object',
          required: ['uses', 'expiresInS'],
          additionalProperties: false,
          properties: {
            uses: { type: 'integer', minimum: 1, maximum: 1_000_000 },
            expiresInS: { type: 'integer', minimum: 1, maximum: 366 * 24 * 3600 },
            tags: tagsSchema,
          },
        },
        response: {
          201: { ...tokenSchema, required: [...tokenSchema.required, 'token'], properties: { ...tokenSchema.properties, token: { type: 'string' } } },
        },
      },
    },
    async (req, reply) => reply.code(201).send(await tokens.create(req.body)),
  );

  app.get<{ Querystring: { limit: number; cursor?: string } }>(
    '/api/v1/enrollment-tokens',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'List enrollment tokens, newest first (never their secrets)',
        querystring: { type: 'object', additionalProperties: false, properties: { ...pageQueryProperties } },
        response: { 200: pageSchema(tokenSchema) },
      },
    },
    async (req) => tokens.list(req.query.limit, req.query.cursor),
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/enrollment-tokens/:id',
    { config: { access: 'admin' }, schema: { summary: 'Revoke an enrollment token', params: uuidParams, response: { 200: tokenSchema } } },
    async (req) => tokens.revoke(req.params.id),
  );
}
