import type { FastifyInstance } from 'fastify';

/** What readiness depends on; the server passes its live parts. */
export interface HealthChecks {
  database(): Promise<boolean>;
  broker(): boolean;
}

/** `/healthz`, `/readyz` and `/metrics` need no key (DESIGN §6). */
export async function healthRoutes(
  app: FastifyInstance,
  opts: { checks: HealthChecks; metricsText: () => Promise<string>; contentType: string },
): Promise<void> {
  app.get('/healthz', { config: { access: 'public' }, logLevel: 'warn' }, async () => ({ status: 'ok' }));

  app.get('/readyz', { config: { access: 'public' }, logLevel: 'warn' }, async (_req, reply) => {
    const [database, broker] = [await opts.checks.database(), opts.checks.broker()];
    const ready = database && broker;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks: { database, broker } });
  });

  app.get('/metrics', { config: { access: 'public' }, logLevel: 'warn' }, async (_req, reply) => {
    return reply.type(opts.contentType).send(await opts.metricsText());
  });
}
