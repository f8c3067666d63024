import type { FastifyInstance } from 'fastify';
import type { TelemetryService } from '../services/telemetry.service.js';

/** Telemetry values as stored: the device's short keys (DESIGN §3), any JSON. */
const telemetryValues = { type: 'object', additionalProperties: true } as const;

const errorBody = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, error: { type: 'string' }, message: { type: 'string' } },
} as const;

/** `GET /api/v1/devices/{id}/telemetry` (viewer): a device's metrics, paged by time (DESIGN §2). */
export async function telemetryRoutes(app: FastifyInstance, opts: { telemetry: TelemetryService }): Promise<void> {
  app.get<{ Params: { id: string }; Querystring: { from?: string; to?: string; limit: number; cursor?: string } }>(
    '/api/v1/devices/:id/telemetry',
    {
      config: { access: 'viewer' },
      schema: {
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            from: { type: 'string', format: 'date-time', description: 'first instant included (ISO 8601)' },
            to: { type: 'string', format: 'date-time', description: 'first instant excluded (ISO 8601)' },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            cursor: { type: 'string', maxLength: 200 },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['items', 'nextCursor'],
            properties: {
              items: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['at', 'telemetry'],
                  properties: { at: { type: 'string', format: 'date-time' }, telemetry: telemetryValues },
                },
              },
              nextCursor: { type: ['string', 'null'] },
            },
          },
          400: errorBody,
          404: errorBody,
        },
      },
    },
    async (req) => opts.telemetry.page(req.params.id, req.query),
  );
}
