import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The correlation id header: accepted from the client (or a proxy), else made; echoed in every response. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** What a client may send as an id: printable, short; anything else is replaced, never logged as given. */
const ACCEPTABLE = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** Fastify's `genReqId`: the caller's X-Request-Id when it is a sane token, else a fresh UUID. */
export function requestId(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && ACCEPTABLE.test(given) ? given : randomUUID();
}
