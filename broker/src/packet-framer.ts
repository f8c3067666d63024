/** Why the edge closed a connection after looking at its bytes. */
export type FrameRefusal = 'unauthenticated_too_large' | 'packet_too_large' | 'malformed_length';

/** The bounds a {@link PacketFramer} enforces. */
export interface FrameLimits {
  /** Bytes a connection may send before its CONNACK, and the largest packet it may announce then (DESIGN §3: 64 KiB). */
  preAuthBytes: number;
  /** Largest remaining length of a packet once the connection is authenticated. */
  maxPacketBytes: number;
  /** Largest PUBLISH payload a device may send; a longer one is cut to one byte more. */
  maxPayloadBytes: number;
}

const PUBLISH = 3;
const SUBSCRIBE = 8;

/** Fixed header of `type` and `flags` with `length` as remaining length [MQTT-2.2.3]. */
function fixedHeader(first: number, length: number): number[] {
  const out = [first];
  do {
    out.push((length % 128) | (length >= 128 ? 0x80 : 0));
    length = Math.floor(length / 128);
  } while (length > 0);
  return out;
}

/**
 * Follows the MQTT 3.1.1 packet boundaries of one connection's incoming bytes
 * and hands them on, so every bound holds on what a packet announces, before
 * the parser behind it buffers the packet (mqtt-packet collects a whole packet,
 * however long its fixed header says it is):
 *
 * - before the CONNACK, at most `preAuthBytes` in all, and no packet announcing more;
 * - after it, a PUBLISH announcing more than `maxPacketBytes` is handed on cut
 *   to its topic, message id and `maxPayloadBytes + 1` bytes of payload, the rest
 *   discarded as it arrives: the broker then refuses it as too large, acknowledges
 *   it and the session goes on (DESIGN §3), without having buffered it;
 * - any other packet announcing more than `maxPacketBytes` closes the connection.
 *
 * It also caps the QoS requested in every SUBSCRIBE at 1, in place (DESIGN §3: a
 * QoS 2 request is granted 1). Aedes builds the SUBACK from the requested QoS,
 * not from the subscription its `authorizeSubscribe` hook returns, so capping
 * the request is what makes the SUBACK say 1 [MQTT-3.9.3-2].
 */
export class PacketFramer {
  /** Set once the CONNACK accepting the connection is written. */
  authenticated = false;
  private received = 0;
  private state: 'header' | 'topicLength' | 'body' | 'discard' = 'header';
  // The fixed header (and, for a PUBLISH being cut, its topic length) read so far, not yet handed on.
  private held: number[] = [];
  private type = 0;
  private flags = 0;
  private length = 0;
  /** Bytes of the current state still to come (body: to hand on; discard: to drop). */
  private remaining = 0;
  /** Bytes to drop once the kept part of a cut PUBLISH is handed on. */
  private discardAfter = 0;
  // SUBSCRIBE payload walk: 'id' (2 bytes), then per filter 'len' (2), 'topic' (len), 'qos' (1).
  private sub: 'id' | 'len' | 'topic' | 'qos' = 'id';
  private subCount = 0;
  private topicLeft = 0;

  constructor(private readonly limits: FrameLimits) {}

  /**
   * Looks at the next chunk of the connection (it may rewrite a SUBSCRIBE's
   * QoS bytes in place) and passes what goes on to `forward`, in order. Returns
   * why the connection must close, or undefined.
   */
  inspect(chunk: Buffer, forward: (bytes: Buffer) => void): FrameRefusal | undefined {
    if (!this.authenticated) {
      this.received += chunk.length;
      if (this.received > this.limits.preAuthBytes) return 'unauthenticated_too_large';
    }
    let sliceStart = 0; // start of the bytes of this chunk to hand on as they are
    let heldFrom = this.held.length > 0 ? -1 : 0; // where the held bytes start in this chunk (-1: in an earlier one)
    let i = 0;
    const flush = (end: number): void => {
      if (end > sliceStart) forward(chunk.subarray(sliceStart, end));
    };
    while (i < chunk.length) {
      if (this.state === 'body') {
        if (this.type !== SUBSCRIBE) {
          const n = Math.min(this.remaining, chunk.length - i);
          this.remaining -= n;
          i += n;
        } else {
          this.subscribeByte(chunk, i++);
          this.remaining--;
        }
        if (this.remaining > 0) continue;
        if (this.discardAfter > 0) {
          // The kept part of a cut PUBLISH goes on; the rest is dropped as it comes.
          flush(i);
          sliceStart = i;
          this.state = 'discard';
          this.remaining = this.discardAfter;
          this.discardAfter = 0;
        } else {
          this.state = 'header';
        }
        continue;
      }
      if (this.state === 'discard') {
        const n = Math.min(this.remaining, chunk.length - i);
        this.remaining -= n;
        i += n;
        sliceStart = i;
        if (this.remaining === 0) this.state = 'header';
        continue;
      }
      if (this.held.length === 0) heldFrom = i;
      const byte = chunk[i++]!;
      this.held.push(byte);
      if (this.state === 'topicLength') {
        if (this.held.length < this.headerLength() + 2) continue;
        // Cut the PUBLISH: topic, message id and one byte more payload than allowed; drop the rest.
        const topicLength = this.held.at(-2)! * 256 + byte;
        const kept = 2 + topicLength + (((this.flags >> 1) & 3) > 0 ? 2 : 0) + this.limits.maxPayloadBytes + 1;
        if (kept >= this.length) return 'packet_too_large';
        flush(heldFrom);
        forward(Buffer.from([...fixedHeader((PUBLISH << 4) | this.flags, kept), ...this.held.slice(-2)]));
        sliceStart = i;
        this.held = [];
        this.state = 'body';
        this.remaining = kept - 2;
        this.discardAfter = this.length - kept;
        continue;
      }
      if (this.held.length === 1) {
        this.type = byte >> 4;
        this.flags = byte & 0x0f;
        this.length = 0;
        continue;
      }
      // Remaining length: 7 bits a byte, least significant first, at most 4 bytes [MQTT-2.2.3].
      const lengthBytes = this.held.length - 1;
      this.length += (byte & 0x7f) * 128 ** (lengthBytes - 1);
      if (byte & 0x80) {
        if (lengthBytes === 4) return 'malformed_length';
        continue;
      }
      const bound = this.authenticated ? this.limits.maxPacketBytes : this.limits.preAuthBytes;
      if (this.length > bound) {
        if (!this.authenticated) return 'unauthenticated_too_large';
        if (this.type !== PUBLISH) return 'packet_too_large';
        this.state = 'topicLength';
        continue;
      }
      // A header handed on as it came: from this chunk's bytes, or from what an earlier chunk left held.
      if (heldFrom === -1) {
        forward(Buffer.from(this.held));
        sliceStart = i;
      }
      this.held = [];
      this.state = 'body';
      this.remaining = this.length;
      this.discardAfter = 0;
      this.sub = 'id';
      this.subCount = 0;
      if (this.remaining === 0) this.state = 'header';
    }
    // What is held waits for the rest of its header (it is in `held`); the bytes before it go on now.
    if (this.held.length === 0) flush(chunk.length);
    else if (heldFrom >= 0) flush(heldFrom);
    return undefined;
  }

  private headerLength(): number {
    let n = 1;
    while (this.held[n]! & 0x80) n++;
    return n + 1;
  }

  private subscribeByte(chunk: Buffer, i: number): void {
    const byte = chunk[i]!;
    switch (this.sub) {
      case 'id':
        if (++this.subCount === 2) [this.sub, this.subCount, this.topicLeft] = ['len', 0, 0];
        return;
      case 'len':
        this.topicLeft = this.topicLeft * 256 + byte;
        if (++this.subCount === 2) this.sub = this.topicLeft > 0 ? 'topic' : 'qos';
        return;
      case 'topic':
        if (--this.topicLeft === 0) this.sub = 'qos';
        return;
      case 'qos':
        if ((byte & 0x03) === 2) chunk[i] = (byte & 0xfc) | 1;
        [this.sub, this.subCount, this.topicLeft] = ['len', 0, 0];
        return;
    }
  }
}
