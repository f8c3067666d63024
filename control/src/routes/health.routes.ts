import type { FastifyInstance } from 'fastify';
import { errorResponses } from '../http/schemas.js';

/** What readiness depends on; the server passes its live parts. */
export interface HealthChecks {
  /** The start has finished: every part is up and the bootstrap admin key is in place. */
  started(): boolean;
  database(): Promise<boolean>;
  broker(): boolean;
  /** Per batched writer (telemetry, presence, events): false while it is stalled (has work, cannot make progress). */
  writers?(): Record<string, boolean>;
  /** In a cluster: Redis answers (DESIGN §8). Absent on a single node. */
  redis?(): boolean;
}

const readySchema = {
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['ready', 'not ready'] },
    checks: {
      type: 'object',
      required: ['started', 'database', 'broker'],
      properties: {
        started: { type: 'boolean' },
        database: { type: 'boolean' },
        broker: { type: 'boolean' },
        // One per batched writer: false while it has work it cannot write (kernex_writer_stalled).
        telemetryWriter: { type: 'boolean' },
        presenceWriter: { type: 'boolean' },
        eventsWriter: { type: 'boolean' },
        // In a cluster only (DESIGN §8).
        redis: { type: 'boolean' },
      },
    },
  },
} as const;

/**
 * `/healthz`, `/readyz` and `/metrics` need no key (DESIGN §6) and are not rate
 * limited: probes and scrapers must never be told 429.
 */
export async function healthRoutes(
  app: FastifyInstance,
  opts: { checks: HealthChecks; metricsText: () => Promise<string>; contentType: string },
): Promise<void> {
  app.get(
    '/healthz',
    {
      config: { access: 'public', rateLimit: false },
      logLevel: 'warn',
      schema: {
        summary: 'Liveness: 200 while the process runs',
        response: { 200: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } }, ...errorResponses },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      config: { access: 'public', rateLimit: false },
      logLevel: 'warn',
      schema: { summary: 'Readiness: the start has finished, the database answers, the broker listens, and no writer is stalled', response: { 200: readySchema, 503: readySchema, ...errorResponses } },
    },
    async (_req, reply) => {
      const [started, database, broker] = [opts.checks.started(), await opts.checks.database(), opts.checks.broker()];
      const writers = Object.fromEntries(Object.entries(opts.checks.writers?.() ?? {}).map(([name, ok]) => [`${name}Writer`, ok]));
      const redis = opts.checks.redis?.();
      const ready = started && database && broker && Object.values(writers).every(Boolean) && redis !== false;
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks: { started, database, broker, ...writers, ...(redis === undefined ? {} : { redis }) } });
    },
  );

  app.get(
    '/metrics',
    {
      config: { access: 'public', rateLimit: false },
      logLevel: 'warn',
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        response: { 200: { type: 'string', description: 'Prometheus text format' }, ...errorResponses },
      },
    },
    async (_req, reply) => {
      return reply.type(opts.contentType).send(await opts.metricsText());
    },
  );
}
