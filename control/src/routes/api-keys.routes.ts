import type { FastifyInstance } from 'fastify';
import { toApiKeyView, type ApiKeysService } from '../auth/api-keys.service.js';
import { ROLES, type Role } from '../auth/roles.js';
import { pageQueryProperties, pageSchema, type PageQuery } from '../paging.js';
import { dateTime, errorResponses, nullableDateTime, uuidParams } from '../http/schemas.js';

const apiKeySchema = {
  type: 'object',
  required: ['id', 'name', 'role', 'keyPrefix', 'createdAt', 'lastUsedAt', 'revokedAt'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    name: { type: 'string' },
    role: { type: 'string', enum: ROLES },
    keyPrefix: { type: 'string', description: 'first characters of the key, to recognise it' },
    createdAt: dateTime,
    lastUsedAt: nullableDateTime,
    revokedAt: nullableDateTime,
  },
} as const;

/** Admin API keys (DESIGN §6): create (the secret is answered once), list, revoke. Admin only. */
export async function apiKeysRoutes(app: FastifyInstance, opts: { apiKeys: ApiKeysService }): Promise<void> {
  app.post<{ Body: { name: string; role: Role } }>(
    '/api/v1/api-keys',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Create an API key; the key itself is in this answer only',
        body: {
          type: 'object',
          required: ['name', 'role'],
          additionalProperties: false,
          properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, role: { type: 'string', enum: ROLES } },
        },
        response: {
          201: {
            ...apiKeySchema,
            required: [...apiKeySchema.required, 'key'],
            properties: { ...apiKeySchema.properties, key: { type: 'string', description: 'the secret; shown once' } },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const { key, row } = await opts.apiKeys.create(req.body.name, req.body.role);
      req.log.info({ keyId: row.id, role: row.role }, 'API key created');
      return reply.code(201).send({ ...toApiKeyView(row), key });
    },
  );

  app.get<{ Querystring: Required<Pick<PageQuery, 'limit'>> & PageQuery }>(
    '/api/v1/api-keys',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'List API keys, revoked ones too (never their secrets)',
        querystring: { type: 'object', additionalProperties: false, properties: { ...pageQueryProperties } },
        response: { 200: pageSchema(apiKeySchema), ...errorResponses },
      },
    },
    async (req) => opts.apiKeys.list(req.query),
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/api-keys/:id',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Revoke an API key at once; the last active admin key cannot be revoked (409)',
        params: uuidParams,
        response: { 200: apiKeySchema, ...errorResponses },
      },
    },
    async (req) => opts.apiKeys.revoke(req.params.id),
  );
}
