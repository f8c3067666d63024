import type { FastifyInstance } from 'fastify';
import { pageQueryProperties, pageSchema, type PageQuery } from '../paging.js';
import { dateTime, errorResponses } from '../http/schemas.js';
import type { NodesService } from '../services/nodes.service.js';

const nodeSchema = {
  type: 'object',
  required: ['id', 'startedAt', 'leaseExpiresAt', 'leader', 'connections'],
  properties: {
    id: { type: 'string', description: 'KERNEX_NODE_ID, or host:port by default' },
    startedAt: dateTime,
    leaseExpiresAt: { ...dateTime, type: ['string', 'null'], description: "when the node's lease ends unless renewed (the database's clock); null on a single node" },
    leader: { type: 'boolean', description: 'true for the node running the orchestrator' },
    connections: { type: 'integer', description: 'devices connected to the node at its last renewal' },
  },
} as const;

/** `GET /api/v1/nodes` (viewer, DESIGN §8): the nodes of the installation; a single node lists itself. */
export async function nodesRoutes(app: FastifyInstance, opts: { nodes: NodesService }): Promise<void> {
  app.get<{ Querystring: PageQuery & { limit: number } }>(
    '/api/v1/nodes',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'List the server nodes of the installation',
        querystring: { type: 'object', additionalProperties: false, properties: pageQueryProperties },
        response: { 200: pageSchema(nodeSchema), ...errorResponses },
      },
    },
    async (req) => opts.nodes.list(req.query.limit, req.query.cursor),
  );
}
