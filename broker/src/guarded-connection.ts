import { Duplex } from 'node:stream';
import type { FrameRefusal, PacketFramer } from './packet-framer.js';

/** CONNACK fixed header byte and the return code that accepts [MQTT-3.2.2-3]. */
const CONNACK = 0x20;
const ACCEPTED = 0;

/**
 * The stream Aedes reads a connection from: the socket's bytes as the
 * {@link PacketFramer} hands them on, so a refused connection is closed (and an
 * oversized PUBLISH cut) before Aedes buffers what it announced. Writes go to the socket unchanged;
 * the first 4 bytes written are the server's CONNACK [MQTT-3.2.0-1], and one
 * with return code 0 tells the framer the connection is authenticated.
 */
export class GuardedConnection extends Duplex {
  private connack: number[] = [];

  constructor(
    private readonly socket: Duplex,
    private readonly framer: PacketFramer,
    private readonly events: { onRefused(reason: FrameRefusal): void; onAuthenticated(): void },
  ) {
    super({ allowHalfOpen: false });
    socket.on('data', (chunk: Buffer) => {
      if (this.destroyed) return;
      let more = true;
      const refusal = framer.inspect(chunk, (bytes) => {
        more = this.push(bytes) && more;
      });
      if (refusal) {
        events.onRefused(refusal);
        this.destroy();
        return;
      }
      if (!more) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.watchConnack(chunk);
    if (this.socket.write(chunk)) callback();
    else this.socket.once('drain', () => callback());
  }

  // mqtt-packet corks the stream around each packet's several writes: keep them one write to the socket.
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.socket.cork();
    let ok = true;
    for (const { chunk } of chunks) {
      this.watchConnack(chunk);
      ok = this.socket.write(chunk);
    }
    this.socket.uncork();
    if (ok) callback();
    else this.socket.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }

  private watchConnack(chunk: Buffer): void {
    if (this.connack.length >= 4) return;
    for (let i = 0; i < chunk.length && this.connack.length < 4; i++) this.connack.push(chunk[i]!);
    if (this.connack.length === 4 && this.connack[0] === CONNACK && this.connack[3] === ACCEPTED) {
      this.framer.authenticated = true;
      this.events.onAuthenticated();
    }
  }
}
