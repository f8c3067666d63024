import type { FastifyInstance } from 'fastify';
import type { Counter } from 'prom-client';
import { Errors } from '../errors.js';
import { errorBodySchema } from '../http/schemas.js';
import type { BundlesService } from '../services/bundles.service.js';
import type { DeltaService } from '../services/delta.service.js';
import { BlobNotFoundError } from '../storage/bundle-storage.js';
import { sendBlob } from './blob-reply.js';

export interface DeltasRoutesOptions {
  bundles: BundlesService;
  deltas: DeltaService;
  bytesServed?: Counter<'kind'>;
}

const errorBody = errorBodySchema;
const uuid = { type: 'string', format: 'uuid' } as const;

/**
 * A bundle's signed file index and its deltas (DESIGN §4 "Delta transfer").
 * Who may fetch them is who may fetch the bundle's blob: a device with a live
 * execution of it, or an API key.
 */
export async function deltasRoutes(app: FastifyInstance, opts: DeltasRoutesOptions): Promise<void> {
  const { bundles, deltas } = opts;

  app.get(
    '/api/v1/bundles/:id/index',
    {
      config: { access: { role: 'viewer', device: true } },
      schema: {
        summary: "The bundle's file index (canonical JSON; signed as kernex-index:{name}:{version}:{sha256 of this body})",
        tags: ['bundles'],
        params: { type: 'object', required: ['id'], properties: { id: uuid } },
        response: { 200: { description: 'the index, byte for byte as signed' }, 404: errorBody },
      },
    },
    async (req, reply) => {
      const id = (req.params as { id: string }).id;
      await bundles.get(id);
      await bundles.assertCanFetch(req.principal!, id);
      const index = await deltas.index(id);
      if (!index) throw new Errors.NOT_FOUND('bundle index');
      return reply.header('content-type', 'application/json').header('x-kernex-index-signature', index.signature).send(index.text);
    },
  );

  app.get(
    '/api/v1/bundles/:id/deltas/:fromId/blob',
    {
      config: { access: { role: 'viewer', device: true } },
      schema: {
        summary: "The delta from bundle fromId to this bundle (.tar.gz of the files fromId lacks); Range and If-Range as for the blob. Made on the first request when it was not yet",
        tags: ['bundles'],
        params: { type: 'object', required: ['id', 'fromId'], properties: { id: uuid, fromId: uuid } },
        headers: { type: 'object', properties: { range: { type: 'string', maxLength: 256 }, 'if-range': { type: 'string', maxLength: 256 } } },
        response: { 200: { description: 'the whole delta (application/gzip)' }, 206: { description: 'the requested range' }, 404: errorBody, 416: errorBody, 503: errorBody },
      },
    },
    async (req, reply) => {
      const { id, fromId } = req.params as { id: string; fromId: string };
      const to = await bundles.get(id);
      await bundles.assertCanFetch(req.principal!, id);
      const from = await bundles.get(fromId);
      if (from.name !== to.name || from.id === to.id) throw new Errors.NOT_FOUND('delta');
      const delta = (await deltas.delta(fromId, id)) ?? (await deltas.ensure(fromId, to));
      if (!delta) throw new Errors.NOT_FOUND('delta');
      try {
        return await sendBlob(req, reply, { sha256: delta.sha256, size: delta.size, open: (range) => bundles.openStored(delta.blobKey, range), counted: (n) => opts.bytesServed?.inc({ kind: 'delta' }, n) });
      } catch (err) {
        if (err instanceof BlobNotFoundError) throw new Errors.NOT_FOUND('delta blob');
        throw err;
      }
    },
  );
}
