import type { FastifyInstance } from 'fastify';
import { pageQueryProperties, pageSchema, type PageQuery } from '../paging.js';
import { dateTime, errorResponses } from '../http/schemas.js';
import type { AuditService } from '../services/audit.service.js';

const nullableString = { type: ['string', 'null'] } as const;

const auditEntrySchema = {
  type: 'object',
  required: ['id', 'at', 'actor', 'action', 'method', 'route', 'targetId', 'statusCode', 'result', 'errorCode', 'address', 'requestId'],
  properties: {
    id: { type: 'string' },
    at: dateTime,
    actor: {
      type: 'object',
      required: ['kind', 'id', 'name'],
      properties: {
        kind: { type: 'string', enum: ['apiKey', 'device', 'anonymous'] },
        id: { ...nullableString, description: 'API key id or device id' },
        name: { ...nullableString, description: "the API key's name" },
      },
    },
    action: { type: 'string', description: "method and route pattern, e.g. 'DELETE /api/v1/api-keys/:id'" },
    method: { type: 'string' },
    route: { type: 'string' },
    targetId: { ...nullableString, description: 'what the change acted on' },
    statusCode: { type: 'integer' },
    result: { type: 'string', enum: ['success', 'failure'] },
    errorCode: nullableString,
    address: nullableString,
    requestId: nullableString,
  },
} as const;

interface AuditQuerystring extends PageQuery {
  limit: number;
  actor?: string;
  result?: 'success' | 'failure';
}

/** `GET /api/v1/audit`: the audit log, newest first (admin: it names keys and addresses). */
export async function auditRoutes(app: FastifyInstance, opts: { audit: AuditService }): Promise<void> {
  app.get<{ Querystring: AuditQuerystring }>(
    '/api/v1/audit',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'List audit entries, newest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...pageQueryProperties,
            actor: { type: 'string', maxLength: 100, description: 'only entries by this API key id or device id' },
            result: { type: 'string', enum: ['success', 'failure'] },
          },
        },
        response: { 200: pageSchema(auditEntrySchema), ...errorResponses },
      },
    },
    async (req) => opts.audit.list({ limit: req.query.limit, cursor: req.query.cursor, actorId: req.query.actor, result: req.query.result }),
  );
}
