import { Transform, type Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Errors } from '../errors.js';
import type { ByteRange } from '../storage/bundle-storage.js';
import { parseRange } from './byte-range.js';

/**
 * Answers a blob GET as DESIGN §4 asks of bundle blobs and deltas alike:
 * `Range` (206), `If-Range` against the ETag (a stale one gets the whole
 * body), `416` past the end; `counted` is told every byte that leaves.
 */
export async function sendBlob(
  req: FastifyRequest,
  reply: FastifyReply,
  blob: { sha256: string; size: number; open(range?: ByteRange): Promise<Readable>; counted?(bytes: number): void },
): Promise<FastifyReply> {
  const etag = `"${blob.sha256}"`;
  const ifRange = req.headers['if-range'];
  // RFC 9110 §13.1.5: a Range with a stale If-Range gets the whole body.
  const range = ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, blob.size) : undefined;
  void reply.header('accept-ranges', 'bytes').header('etag', etag);
  if (range === 'unsatisfiable') {
    void reply.header('content-range', `bytes */${blob.size}`);
    throw new Errors.RANGE_NOT_SATISFIABLE(blob.size);
  }
  const source = await blob.open(range);
  const stream = blob.counted ? source.pipe(counter(blob.counted, source)) : source;
  void reply.header('content-type', 'application/gzip');
  if (range) {
    return reply
      .code(206)
      .header('content-range', `bytes ${range.start}-${range.end}/${blob.size}`)
      .header('content-length', range.end - range.start + 1)
      .send(stream);
  }
  return reply.header('content-length', blob.size).send(stream);
}

/** Counts bytes on their way out; an error of the source is passed on, so the reply ends. */
function counter(count: (bytes: number) => void, source: Readable): Transform {
  const t = new Transform({
    transform(chunk: Buffer, _e, cb) {
      count(chunk.length);
      cb(null, chunk);
    },
  });
  source.once('error', (err) => t.destroy(err));
  t.once('close', () => source.destroy());
  return t;
}
