import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isUnstorableString } from '@kernex/shared';
import fp from 'fastify-plugin';
import type { AuditService } from '../services/audit.service.js';
import type { NewAuditEntry } from '../store/audit.pg.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The id of what a change acted on, when it is not the route's `:id` (e.g. a created resource). */
    auditTarget?: string;
  }
}

/** Methods that change nothing and so are not audited. */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Larger JSON answers are not parsed just to find a created resource's id. */
const MAX_PARSED_PAYLOAD = 64 * 1024;

/**
 * A target PostgreSQL can store: an id holding a NUL or a lone surrogate (a refused request's)
 * is kept JSON-escaped, so the entry is written rather than lost with an error (DESIGN §3, §6).
 */
const storableTarget = (target: string | null): string | null =>
  target !== null && isUnstorableString(target) ? JSON.stringify(target).slice(1, -1) : target;

/** The target of a change: the route's `:id`, what the route named, or the `id` of a created resource. */
function targetOf(req: FastifyRequest, reply: FastifyReply, payload: unknown): string | null {
  const params = (req.params ?? {}) as Record<string, unknown>;
  if (typeof params.id === 'string') return params.id;
  const first = Object.values(params).find((v) => typeof v === 'string' && v !== '');
  if (typeof first === 'string') return first;
  if (req.auditTarget) return req.auditTarget;
  if (reply.statusCode < 300 && typeof payload === 'string' && payload.length <= MAX_PARSED_PAYLOAD && payload.startsWith('{')) {
    try {
      const body = JSON.parse(payload) as { id?: unknown; deviceId?: unknown };
      if (typeof body.id === 'string') return body.id;
      if (typeof body.deviceId === 'string') return body.deviceId;
    } catch {
      return null;
    }
  }
  return null;
}

function errorCodeOf(reply: FastifyReply, payload: unknown): string | null {
  if (reply.statusCode < 400 || typeof payload !== 'string' || payload.length > MAX_PARSED_PAYLOAD) return null;
  try {
    const body = JSON.parse(payload) as { code?: unknown };
    return typeof body.code === 'string' ? body.code : null;
  } catch {
    return null;
  }
}

/**
 * Writes an audit entry for every request that may change something (any
 * method but GET/HEAD/OPTIONS) and reached a route, before the answer leaves,
 * so a client that saw the answer finds the entry. Generic on purpose: routes
 * added later are covered without doing anything. Refusals count too (401,
 * 403, 400: result `failure`), except 429s, which only a flood produces.
 */
export const auditPlugin = fp(async function auditPlugin(app: FastifyInstance, opts: { audit: AuditService }) {
  app.decorateRequest('auditTarget', undefined);

  app.addHook('onSend', async (req, reply, payload) => {
    const route = req.routeOptions.url;
    if (READS.has(req.method) || route === undefined || reply.statusCode === 429) return payload;
    const p = req.principal;
    const entry: NewAuditEntry = {
      actorKind: p ? p.kind : 'anonymous',
      actorId: p ? (p.kind === 'apiKey' ? p.keyId : p.deviceId) : null,
      actorName: p?.kind === 'apiKey' ? p.name : null,
      method: req.method,
      route,
      targetId: storableTarget(targetOf(req, reply, payload)),
      statusCode: reply.statusCode,
      result: reply.statusCode < 400 ? 'success' : 'failure',
      errorCode: errorCodeOf(reply, payload),
      address: req.ip,
      requestId: String(req.id),
    };
    await opts.audit.record(entry);
    return payload;
  });
});
