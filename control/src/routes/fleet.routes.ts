import { EXECUTION_STATES } from '@kernex/shared';
import type { FastifyInstance } from 'fastify';
import { dateTime, errorResponses, uuidParams } from '../http/schemas.js';
import { SERIES_WINDOWS, type FleetService, type SeriesWindow } from '../services/fleet.service.js';
import { deviceIdParams, tagsSchema } from './devices.schemas.js';

const countsSchema = { type: 'object', properties: Object.fromEntries(EXECUTION_STATES.map((s) => [s, { type: 'integer' }])), additionalProperties: false } as const;
const nullableNumber = { type: ['number', 'null'] } as const;

/** Aggregates the console reads (DESIGN §9: server-side aggregation, fast at 10,000 devices). Viewer. */
export async function fleetRoutes(app: FastifyInstance, opts: { fleet: FleetService }): Promise<void> {
  const { fleet } = opts;

  app.get(
    '/api/v1/fleet/summary',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'Devices by status and presence, bundle versions installed, deployments running',
        response: {
          200: {
            type: 'object',
            required: ['byStatus', 'online', 'offline', 'total', 'versions', 'deploymentsRunning'],
            properties: {
              byStatus: { type: 'object', additionalProperties: { type: 'integer' } },
              online: { type: 'integer' },
              offline: { type: 'integer' },
              total: { type: 'integer' },
              versions: {
                type: 'array',
                items: { type: 'object', required: ['name', 'version', 'devices'], properties: { name: { type: 'string' }, version: { type: 'string' }, devices: { type: 'integer' } } },
              },
              deploymentsRunning: { type: 'integer' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async () => fleet.summary(),
  );

  app.get<{ Querystring: { deviceId?: string[]; tag?: string[]; all?: boolean } }>(
    '/api/v1/fleet/target-count',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'How many accepted devices a deployment target (repeat deviceId and tag) would match now',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            deviceId: { type: 'array', maxItems: 10_000, items: deviceIdParams.properties.id },
            tag: tagsSchema,
            all: { type: 'boolean' },
          },
        },
        response: { 200: { type: 'object', required: ['count'], properties: { count: { type: 'integer' } } }, ...errorResponses },
      },
    },
    async (req) => ({ count: await fleet.targetCount({ deviceIds: req.query.deviceId, tags: req.query.tag, all: req.query.all }) }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/deployments/:id/phases',
    {
      config: { access: 'viewer' },
      schema: {
        summary: "A deployment's executions per phase and state",
        params: uuidParams,
        response: {
          200: {
            type: 'object',
            required: ['items'],
            properties: {
              items: { type: 'array', items: { type: 'object', required: ['phase', 'total', 'counts'], properties: { phase: { type: 'integer' }, total: { type: 'integer' }, counts: countsSchema } } },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req) => ({ items: await fleet.phases(req.params.id) }),
  );

  app.get<{ Params: { id: string }; Querystring: { limit: number } }>(
    '/api/v1/devices/:id/executions',
    {
      config: { access: 'viewer' },
      schema: {
        summary: "A device's executions, newest first, with their errors",
        params: deviceIdParams,
        querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 } } },
        response: {
          200: {
            type: 'object',
            required: ['items'],
            properties: {
              items: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'deploymentId', 'bundle', 'state', 'error', 'createdAt', 'updatedAt'],
                  properties: {
                    id: { type: 'string' },
                    deploymentId: { type: 'string' },
                    bundle: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' } } },
                    state: { type: 'string' },
                    error: { type: ['string', 'null'] },
                    createdAt: dateTime,
                    updatedAt: dateTime,
                  },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req) => ({ items: await fleet.deviceExecutions(req.params.id, req.query.limit) }),
  );

  app.get<{ Params: { id: string }; Querystring: { window: SeriesWindow } }>(
    '/api/v1/devices/:id/telemetry/series',
    {
      config: { access: 'viewer' },
      schema: {
        summary: "A device's telemetry downsampled by the server: mean CPU %, memory %, disk used % and load per bucket",
        params: deviceIdParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { window: { type: 'string', enum: Object.keys(SERIES_WINDOWS), default: '1h' } },
        },
        response: {
          200: {
            type: 'object',
            required: ['window', 'bucketS', 'points'],
            properties: {
              window: { type: 'string' },
              bucketS: { type: 'integer' },
              points: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['at', 'cpu', 'mem', 'disk', 'load', 'samples'],
                  properties: { at: dateTime, cpu: nullableNumber, mem: nullableNumber, disk: nullableNumber, load: nullableNumber, samples: { type: 'integer' } },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req) => fleet.series(req.params.id, req.query.window),
  );
}
