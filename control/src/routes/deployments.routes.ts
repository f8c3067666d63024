import { EXECUTION_STATES, type ExecutionState } from '@kernex/shared';
import type { FastifyInstance } from 'fastify';
import { errorBodySchema, uuidParams } from '../http/schemas.js';
import { pageQueryProperties, pageSchema } from '../paging.js';
import type { CreateDeployment, DeploymentsService } from '../services/deployments.service.js';

export interface DeploymentsRoutesOptions {
  deployments: DeploymentsService;
}

const errorBody = errorBodySchema;

const deviceId = { type: 'string', pattern: '^[0-9a-f]{24}$' } as const;
const tag = { type: 'string', minLength: 1, maxLength: 64 } as const;

const rollout = {
  type: 'object',
  additionalProperties: false,
  properties: {
    phases: {
      type: 'array',
      minItems: 1,
      maxItems: 20,
      items: {
        type: 'object',
        required: ['percent'],
        additionalProperties: false,
        properties: { percent: { type: 'number', exclusiveMinimum: 0, maximum: 100, description: 'cumulative: the share of the target released by the end of this phase; rising strictly, the last 100' }, waitS: { type: 'integer', minimum: 0, maximum: 86_400 * 7 } },
      },
    },
    maxFailurePercent: { type: 'number', minimum: 0, maximum: 100 },
    maxConcurrent: { type: 'integer', minimum: 1 },
    rollbackOnAbort: { type: 'boolean' },
  },
} as const;

const target = {
  type: 'object',
  additionalProperties: false,
  properties: {
    deviceIds: { type: 'array', maxItems: 100_000, items: deviceId },
    tags: { type: 'array', maxItems: 32, items: tag },
    all: { type: 'boolean' },
  },
} as const;

const counts = { type: 'object', properties: Object.fromEntries(EXECUTION_STATES.map((s) => [s, { type: 'integer' }])) } as const;

const deployment = {
  type: 'object',
  required: ['id', 'bundleId', 'status', 'counts'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    bundleId: { type: ['string', 'null'] },
    bundle: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' } } },
    target,
    rollout: {
      type: 'object',
      properties: { ...rollout.properties, maxConcurrent: { type: ['integer', 'null'] } },
    },
    timeoutS: { type: 'integer' },
    status: { enum: ['running', 'completed', 'aborted', 'cancelled'] },
    phase: { type: 'integer', description: 'index of the phase released last' },
    reason: { type: 'string' },
    counts,
    total: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;

const idParams = uuidParams;
const paging = { type: 'object', additionalProperties: false, properties: pageQueryProperties } as const;

/** `/api/v1/deployments` (DESIGN §5). Thin: rules are in DeploymentsService and the orchestrator. */
export async function deploymentsRoutes(app: FastifyInstance, opts: DeploymentsRoutesOptions): Promise<void> {
  const { deployments } = opts;

  app.post(
    '/api/v1/deployments',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'Deploy a bundle to devices, in phases',
        tags: ['deployments'],
        body: {
          type: 'object',
          required: ['bundleId', 'target'],
          additionalProperties: false,
          properties: { bundleId: { type: 'string', format: 'uuid' }, target, rollout, timeoutS: { type: 'integer', minimum: 1, maximum: 604_800 } },
        },
        response: { 201: deployment, 400: errorBody, 404: errorBody },
      },
    },
    async (req, reply) => reply.code(201).send(await deployments.create(req.body as CreateDeployment, req.principal)),
  );

  app.get(
    '/api/v1/deployments',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'List deployments, newest first',
        tags: ['deployments'],
        querystring: { ...paging, properties: { ...paging.properties, status: { enum: ['running', 'completed', 'aborted', 'cancelled'] } } },
        response: { 200: pageSchema(deployment) },
      },
    },
    async (req) => {
      const q = req.query as { limit: number; cursor?: string; status?: 'running' | 'completed' | 'aborted' | 'cancelled' };
      return deployments.list(q.limit, q.cursor, q.status);
    },
  );

  app.get(
    '/api/v1/deployments/:id',
    {
      config: { access: 'viewer' },
      schema: { summary: 'A deployment with its status and executions counted by state', tags: ['deployments'], params: idParams, response: { 200: deployment, 404: errorBody } },
    },
    async (req) => deployments.get((req.params as { id: string }).id),
  );

  app.get(
    '/api/v1/deployments/:id/executions',
    {
      config: { access: 'viewer' },
      schema: {
        summary: "A deployment's executions, by device id, optionally only those in `state`",
        tags: ['deployments'],
        params: idParams,
        querystring: { ...paging, properties: { ...paging.properties, state: { type: 'string', enum: [...EXECUTION_STATES] } } },
        response: {
          200: pageSchema({
            type: 'object',
            required: ['deviceId', 'state', 'updatedAt'],
            properties: { deviceId: { type: 'string' }, state: { type: 'string' }, error: { type: 'string' }, updatedAt: { type: 'string', format: 'date-time' } },
          }),
          404: errorBody,
        },
      },
    },
    async (req) => {
      const q = req.query as { limit: number; cursor?: string; state?: ExecutionState };
      return deployments.executions((req.params as { id: string }).id, q.limit, q.cursor, q.state);
    },
  );

  app.post(
    '/api/v1/deployments/:id/cancel',
    {
      config: { access: 'operator' },
      schema: { summary: 'Cancel a running deployment', tags: ['deployments'], params: idParams, response: { 200: deployment, 404: errorBody, 409: errorBody } },
    },
    async (req) => deployments.cancel((req.params as { id: string }).id),
  );
}
