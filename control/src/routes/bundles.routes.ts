import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Readable } from 'node:stream';
import { Errors } from '../errors.js';
import { errorBodySchema, uuidParams } from '../http/schemas.js';
import { pageQueryProperties, pageSchema } from '../paging.js';
import { toBundleView, type BundlesService } from '../services/bundles.service.js';
import { BlobNotFoundError } from '../storage/bundle-storage.js';
import { parseRange } from './byte-range.js';

export interface BundlesRoutesOptions {
  bundles: BundlesService;
  maxBundleBytes: number;
}

const errorBody = errorBodySchema;

const bundle = {
  type: 'object',
  required: ['id', 'name', 'version', 'sha256', 'size', 'signature', 'createdAt'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    name: { type: 'string' },
    version: { type: 'string' },
    sha256: { type: 'string', description: 'hex SHA-256 of the archive' },
    size: { type: 'integer', description: 'bytes' },
    signature: { type: 'string', description: "base64 RSASSA-PKCS1-v1_5/SHA-256 of 'kernex-bundle:{name}:{version}:{sha256}' by the server key" },
    description: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
  },
} as const;

const idParams = uuidParams;

/** Content types an upload may carry; the body is passed through as a stream. */
const ARCHIVE_TYPES = ['application/gzip', 'application/x-gzip', 'application/octet-stream', 'application/x-tar+gzip'];

/** The media type of a Content-Type header, lower case, without parameters. */
const mediaType = (header: string | undefined): string => (header ?? '').split(';')[0]!.trim().toLowerCase();

/** `/api/v1/bundles` (DESIGN §4). Thin: rules are in BundlesService. */
export async function bundlesRoutes(app: FastifyInstance, opts: BundlesRoutesOptions): Promise<void> {
  const { bundles } = opts;

  // Raw archive bodies stay streams: the service reads them once, never whole.
  app.addContentTypeParser(ARCHIVE_TYPES, (_req, payload, done) => done(null, payload));

  app.post(
    '/api/v1/bundles',
    {
      config: { access: 'operator' },
      bodyLimit: opts.maxBundleBytes,
      schema: {
        summary: 'Upload a bundle (.tar.gz with manifest.json at its root) as the raw request body',
        tags: ['bundles'],
        consumes: ARCHIVE_TYPES,
        response: { 201: bundle, 400: errorBody, 409: errorBody, 413: errorBody, 415: errorBody, 503: errorBody },
      },
      // Before any body parser runs (Fastify's own would read a text/plain or
      // JSON body whole): a body of another type is refused unread, whatever
      // its size, and the connection is closed rather than drained. A small
      // body (announced at most 64 KiB) is read and dropped first: closing on
      // unread bytes makes the kernel reset the connection, and a reset can
      // destroy the 415 before the client has read it.
      onRequest: async (req, reply) => {
        const type = mediaType(req.headers['content-type']);
        if (!ARCHIVE_TYPES.includes(type)) {
          const declared = Number(req.headers['content-length']);
          if (Number.isFinite(declared) && declared <= SMALL_REFUSED_BODY) await drain(req.raw, SMALL_REFUSED_BODY);
          else void reply.header('connection', 'close');
          throw new Errors.UNSUPPORTED_MEDIA_TYPE(type || '(none)', 'application/gzip');
        }
      },
    },
    async (req, reply) => {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > opts.maxBundleBytes) throw new Errors.PAYLOAD_TOO_LARGE(opts.maxBundleBytes);
      const body = req.body as Readable;
      try {
        const row = await bundles.upload(body);
        return reply.code(201).send(toBundleView(row));
      } catch (err) {
        retryLater(reply, err);
        await drain(body, opts.maxBundleBytes);
        throw err;
      }
    },
  );

  app.get(
    '/api/v1/bundles',
    {
      config: { access: 'viewer' },
      schema: {
        summary: 'List bundles, newest first',
        tags: ['bundles'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...pageQueryProperties,
            name: { type: 'string', maxLength: 128 },
          },
        },
        response: {
          200: pageSchema(bundle),
        },
      },
    },
    async (req) => {
      const q = req.query as { limit: number; cursor?: string; name?: string };
      const page = await bundles.list(q.limit, q.cursor, q.name);
      return { items: page.items.map(toBundleView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/api/v1/bundles/:id',
    {
      config: { access: 'viewer' },
      schema: { summary: 'Show a bundle', tags: ['bundles'], params: idParams, response: { 200: bundle, 404: errorBody } },
    },
    async (req) => toBundleView(await bundles.get((req.params as { id: string }).id)),
  );

  app.delete(
    '/api/v1/bundles/:id',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'Delete a bundle (refused while it is in use: a running deployment, a live execution, or installed on a device)',
        tags: ['bundles'],
        params: idParams,
        response: { 204: { type: 'null' }, 404: errorBody, 409: errorBody },
      },
    },
    async (req, reply) => {
      await bundles.delete((req.params as { id: string }).id);
      return reply.code(204).send();
    },
  );

  app.get(
    '/api/v1/bundles/:id/blob',
    {
      config: { access: { role: 'viewer', device: true } },
      schema: {
        summary: 'Download the archive; honours Range and If-Range (ETag is the sha256) so downloads resume',
        tags: ['bundles'],
        params: idParams,
        headers: {
          type: 'object',
          properties: { range: { type: 'string', maxLength: 256 }, 'if-range': { type: 'string', maxLength: 256 } },
        },
        response: {
          200: { description: 'the whole archive (application/gzip)' },
          206: { description: 'the requested range' },
          403: errorBody,
          404: errorBody,
          416: errorBody,
          503: errorBody,
        },
      },
    },
    async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const row = await bundles.get(id);
      await bundles.assertCanFetch(req.principal!, id);
      const etag = `"${row.sha256}"`;
      const ifRange = req.headers['if-range'];
      // RFC 9110 §13.1.5: a Range with a stale If-Range gets the whole body.
      const range = ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, row.size) : undefined;
      void reply.header('accept-ranges', 'bytes').header('etag', etag);
      if (range === 'unsatisfiable') {
        void reply.header('content-range', `bytes */${row.size}`);
        throw new Errors.RANGE_NOT_SATISFIABLE(row.size);
      }
      try {
        const stream = await bundles.openBlob(id, range);
        void reply.header('content-type', 'application/gzip');
        if (range) {
          return reply
            .code(206)
            .header('content-range', `bytes ${range.start}-${range.end}/${row.size}`)
            .header('content-length', range.end - range.start + 1)
            .send(stream);
        }
        return reply.header('content-length', row.size).send(stream);
      } catch (err) {
        if (err instanceof BlobNotFoundError) throw new Errors.NOT_FOUND('bundle blob');
        retryLater(reply, err);
        throw err;
      }
    },
  );
}

/** Largest refused body read and dropped so the client surely gets its answer. */
const SMALL_REFUSED_BODY = 64 * 1024;

/** Seconds a client is asked to wait when the bundle storage is away (503). */
const RETRY_AFTER_S = 5;

/** A 503 (bundle storage unavailable) tells the client when to try again. */
function retryLater(reply: FastifyReply, err: unknown): void {
  if ((err as { statusCode?: number }).statusCode === 503) void reply.header('retry-after', String(RETRY_AFTER_S));
}

/**
 * Reads and discards what is left of a refused upload, up to `limit` bytes,
 * so the client gets the 400 instead of a reset connection.
 */
async function drain(body: Readable, limit: number): Promise<void> {
  if (body.readableEnded || body.destroyed) return;
  let seen = 0;
  await new Promise<void>((resolve) => {
    body.on('data', (c: Buffer) => {
      seen += c.length;
      if (seen > limit) {
        body.destroy();
        resolve();
      }
    });
    body.once('end', resolve).once('error', () => resolve()).once('close', resolve);
    body.resume();
  });
}
