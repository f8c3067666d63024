import type { Duplex } from 'node:stream';
import type { FrameRefusal, PacketFramer } from './packet-framer.js';

/** What the edge learns from a guarded connection. */
export interface GuardEvents {
  onRefused(reason: FrameRefusal): void;
}

type Push = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/**
 * Puts the {@link PacketFramer} between a connection's bytes and the reader
 * (Aedes reads the stream itself): every chunk the stream pushes goes through
 * the framer first, so a refused connection is closed (and an oversized PUBLISH
 * cut) before Aedes buffers what it announced. The edge sets
 * `framer.authenticated` when the broker has written the CONNACK that accepts it.
 *
 * This gives the stream its own `push` instead of wrapping it in a second
 * Duplex: a wrapper costs every connection a stream of its own (two stream
 * states, listeners, closures: about 1.5 KB of heap) and a hop per chunk in
 * each direction, for the life of the session. Writes go to the stream
 * unchanged; backpressure is the stream's own (its reader stops reading when
 * `push` answers false).
 */
export function guardConnection(stream: Duplex, framer: PacketFramer, events: GuardEvents): void {
  const push = stream.push as Push;
  let more = true;
  const forward = (bytes: Buffer): void => {
    more = push.call(stream, bytes) && more;
  };
  (stream as { push: Push }).push = function guardedPush(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null || chunk === undefined) return push.call(stream, chunk);
    if (stream.destroyed) return false;
    const bytes = Buffer.isBuffer(chunk) ? chunk : typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk as Uint8Array);
    more = true;
    const refusal = framer.inspect(bytes, forward);
    if (refusal) {
      events.onRefused(refusal);
      stream.destroy();
      return false;
    }
    return more;
  };
}
