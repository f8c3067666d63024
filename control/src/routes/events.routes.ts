import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiKeysService } from '../services/api-keys.service.js';
import { sessionCookie } from '../auth/session-cookie.js';
import type { SessionsService } from '../services/sessions.service.js';
import type { LiveEvent, LiveEventBus } from '../events/event-bus.js';
import { errorResponses } from '../http/schemas.js';

export interface EventsRoutesOptions {
  bus: LiveEventBus;
  apiKeys: ApiKeysService;
  sessions: SessionsService;
  /** Comment line and credential re-check every this many ms (default 15 s). */
  heartbeatMs?: number;
  /** A client this far behind (bytes not yet sent) is dropped; it reconnects and reloads (default 1 MiB). */
  maxBufferedBytes?: number;
}

/** Browsers' EventSource waits this long before reconnecting by itself. */
const RETRY_MS = 2000;

const frame = (e: LiveEvent): string => `event: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`;

/**
 * `GET /api/v1/events` (viewer, DESIGN §6): a server-sent-event stream of
 * `device`, `execution` and `deployment` changes from the live event bus, so
 * on a cluster whatever node saw a change, every node's streams carry it.
 * A stream starts with `retry` and an `event: ready`; a client that
 * (re)connects reloads what it shows on `ready`, so no event id replay is
 * needed. The credential is checked again at each heartbeat: a session that
 * ended or a key revoked closes the stream (and the reconnect gets 401).
 */
export async function eventsRoutes(app: FastifyInstance, opts: EventsRoutesOptions): Promise<void> {
  const open = new Set<() => void>();
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024;

  const stillAllowed = async (req: FastifyRequest): Promise<boolean> => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer) return Boolean(await opts.apiKeys.verify(bearer));
    const cookie = sessionCookie(req);
    return Boolean(cookie && (await opts.sessions.verify(cookie)));
  };

  app.addHook('preClose', async () => {
    for (const end of [...open]) end();
  });

  app.get(
    '/api/v1/events',
    {
      config: { access: 'viewer', rateLimit: false },
      schema: {
        summary: 'Live changes as server-sent events: device (presence, status, bundles), execution (state), deployment (status, phase, counts)',
        produces: ['text/event-stream'],
        response: { 200: { description: 'text/event-stream: `event: device|execution|deployment|ready`, `data:` one JSON object', type: 'string' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      let ended = false;
      // `ready` is written once every node's events reach this stream (in a cluster, once Redis has
      // this node's subscription; while Redis is away, at once, and other nodes' events follow when it
      // is back; 2 s at most): what changes after it is on the stream. Nothing is written before it.
      let ready = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        unsubscribe();
        clearInterval(heartbeat);
        open.delete(end);
        res.end();
      };
      const unsubscribe = opts.bus.subscribe((e) => {
        if (ended || !ready) return;
        if (res.writableLength > maxBuffered) {
          req.log.info({ buffered: res.writableLength }, 'event stream too far behind; closed');
          end();
          return;
        }
        res.write(frame(e));
      });
      const heartbeat = setInterval(() => {
        void stillAllowed(req).then(
          (ok) => {
            if (!ok) end();
            else if (!ended && ready) res.write(': ping\n\n');
          },
          () => {},
        );
      }, heartbeatMs);
      open.add(end);
      req.raw.on('close', end);
      res.on('error', end);
      await opts.bus.listening();
      if (ended) return;
      res.write(`retry: ${RETRY_MS}\n\nevent: ready\ndata: {}\n\n`);
      ready = true;
    },
  );
}
