import type { FastifyInstance } from 'fastify';
import { pageQueryProperties, pageSchema } from '../paging.js';
import { dateTime, errorResponses } from '../http/schemas.js';
import type { TelemetryService } from '../services/telemetry.service.js';
import { deviceIdParams } from './devices.schemas.js';

const telemetryItem = {
  type: 'object',
  required: ['at', 'telemetry'],
  properties: {
    at: { ...dateTime, description: 'when the server received the sample' },
    telemetry: { type: 'object', additionalProperties: true, description: 'the sample, with the short keys of DESIGN §3 (ts cpu mem disk load up v b)' },
  },
} as const;

/** `GET /api/v1/devices/{id}/telemetry` (viewer): a device's metrics, paged by time (DESIGN §2). */
export async function telemetryRoutes(app: FastifyInstance, opts: { telemetry: TelemetryService }): Promise<void> {
  app.get<{ Params: { id: string }; Querystring: { from?: string; to?: string; limit: number; cursor?: string; order?: 'asc' | 'desc' } }>(
    '/api/v1/devices/:id/telemetry',
    {
      config: { access: 'viewer' },
      schema: {
        summary: "A device's telemetry history, `from <= at < to`, oldest first or newest first (`order=desc`)",
        params: deviceIdParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            from: { ...dateTime, description: 'first instant included (ISO 8601)' },
            to: { ...dateTime, description: 'first instant excluded (ISO 8601)' },
            order: { type: 'string', enum: ['asc', 'desc'], default: 'asc', description: 'asc: oldest first; desc: newest first' },
            ...pageQueryProperties,
          },
        },
        response: { 200: pageSchema(telemetryItem), ...errorResponses },
      },
    },
    async (req) => opts.telemetry.page(req.params.id, req.query),
  );
}
