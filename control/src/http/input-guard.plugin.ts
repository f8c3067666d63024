import { findUnstorable, MAX_JSON_DEPTH, type UnstorableValue } from '@kernex/shared';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Counter } from 'prom-client';
import { Errors } from '../errors.js';

/** The body type of every route that declares no `schema.consumes` of its own. */
export const JSON_TYPE = 'application/json';

export interface InputGuardOptions {
  /** A JSON body must be complete this long after its headers, or the connection is closed. */
  bodyTimeoutMs: number;
  /** Counts connections closed for slowness, by limit. */
  slowClients: Counter<'limit'>;
}

/** The content types a route takes: its `schema.consumes` (bundle uploads), else JSON. */
export function expectedTypes(req: FastifyRequest): string {
  const consumes = (req.routeOptions.schema as { consumes?: readonly string[] } | undefined)?.consumes;
  return consumes && consumes.length > 0 ? consumes.join(' or ') : JSON_TYPE;
}

/** Only values a parser made are walked: a stream or a Buffer (uploads) is not a JSON value. */
function isParsedJson(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return typeof v === 'string';
  if (ArrayBuffer.isView(v)) return false;
  return typeof (v as { pipe?: unknown }).pipe !== 'function';
}

/** `$.hardware.a[2]` found in the body is `body.hardware.a[2]`, as the schema errors name fields. */
function describe(where: 'body' | 'query' | 'params', bad: UnstorableValue): string {
  const field = `${where}${bad.path.slice(1)}`;
  return bad.reason === 'too_deep' ? `${field} is nested deeper than ${MAX_JSON_DEPTH} levels` : `${field} holds a NUL or a lone surrogate, which cannot be stored`;
}

/**
 * One check of every request's input before schema validation or any handler (DESIGN §6):
 * - body, query and path parameters hold only strings PostgreSQL can store, nested no deeper
 *   than {@link MAX_JSON_DEPTH} (`findUnstorable`, iterative), so nothing recursive (ajv,
 *   JSON.stringify, the jsonb parser) ever sees a 5,000-level body; a 400 names the field;
 * - a JSON body that does not arrive within `bodyTimeoutMs` closes the connection, so a client
 *   trickling bytes cannot hold it; bundle uploads (routes with `schema.consumes`) are exempt
 *   and bounded by the idle timeout instead, so an honest slow upload goes through.
 * Fastify's text/plain parser is removed in app.ts, so a JSON route given another type is a 415.
 */
export const inputGuardPlugin = fp(async function inputGuardPlugin(app: FastifyInstance, opts: InputGuardOptions) {
  app.addHook('onRequest', async (req) => {
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody || expectedTypes(req) !== JSON_TYPE) return;
    const raw = req.raw;
    const timer = setTimeout(() => {
      opts.slowClients.labels('body').inc();
      req.log.info({ timeoutMs: opts.bodyTimeoutMs }, 'request body timed out; connection closed');
      raw.socket?.destroy();
    }, opts.bodyTimeoutMs);
    timer.unref();
    // Cleared when the body is all in, not when the answer is sent: a request refused before
    // its body is read (401, 429) must not trickle the rest of it forever either.
    raw.once('end', () => clearTimeout(timer));
    raw.once('close', () => clearTimeout(timer));
  });
  // Node closes a connection whose headers are late (headersTimeout) with ERR_HTTP_REQUEST_TIMEOUT;
  // Fastify answers the client error, this only counts and logs it.
  app.server.on('clientError', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ERR_HTTP_REQUEST_TIMEOUT') return;
    opts.slowClients.labels('headers').inc();
    app.log.info({ timeoutMs: app.server.headersTimeout }, 'request headers timed out; connection closed');
  });

  app.addHook('preValidation', async (req) => {
    // A route that takes no body has no schema to refuse unknown fields with (DESIGN §6).
    if (req.routeOptions.schema?.body === undefined && isParsedJson(req.body) && typeof req.body === 'object' && req.body !== null) {
      const first = Array.isArray(req.body) ? (req.body.length > 0 ? '[0]' : undefined) : Object.keys(req.body)[0];
      if (first !== undefined) throw new Errors.VALIDATION(`body${first.startsWith('[') ? '' : '.'}${first} is not allowed: this route takes no body`);
    }
    // Nor one that takes no query (DESIGN §6: every query is schema-validated). Only the API:
    // the console's static files and the docs UI may be asked with cache-busting queries.
    if (req.routeOptions.schema?.querystring === undefined && req.routeOptions.url?.startsWith('/api/')) {
      const first = Object.keys((req.query as Record<string, unknown> | undefined) ?? {})[0];
      if (first !== undefined) throw new Errors.VALIDATION(`query.${first} is not allowed: this route takes no query`);
    }
    for (const [where, value] of [['params', req.params], ['query', req.query], ['body', req.body]] as const) {
      if (value === undefined || !isParsedJson(value)) continue;
      const bad = findUnstorable(value);
      if (bad) throw new Errors.VALIDATION(describe(where, bad));
    }
  });
});
