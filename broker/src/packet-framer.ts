/** Why the edge closed a connection after looking at its bytes. */
export type FrameRefusal = 'unauthenticated_too_large' | 'packet_too_large' | 'malformed_length';

/** The bounds a {@link PacketFramer} enforces. */
export interface FrameLimits {
  /** Bytes a connection may send before its CONNACK, and the largest packet it may announce then (DESIGN §3: 64 KiB). */
  preAuthBytes: number;
  /** Largest remaining length of a packet once the connection is authenticated. */
  maxPacketBytes: number;
}

const SUBSCRIBE = 8;

/**
 * Follows the MQTT 3.1.1 packet boundaries of one connection's incoming bytes
 * without keeping them, so a bound is enforced on what a packet announces,
 * before the parser behind it buffers the packet (mqtt-packet collects a whole
 * packet, however long its fixed header says it is).
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
  // Fixed header being read: -1 = expecting the first byte.
  private type = -1;
  private length = 0;
  private lengthBytes = 0;
  /** Body bytes of the current packet still to come. */
  private remaining = 0;
  // SUBSCRIBE payload walk: 'id' (2 bytes), then per filter 'len' (2), 'topic' (len), 'qos' (1).
  private sub: 'id' | 'len' | 'topic' | 'qos' = 'id';
  private subCount = 0;
  private topicLeft = 0;

  constructor(private readonly limits: FrameLimits) {}

  /**
   * Looks at the next chunk of the connection (and may rewrite a SUBSCRIBE's
   * QoS bytes in it). Returns why the connection must close, or undefined to
   * hand the chunk on.
   */
  inspect(chunk: Buffer): FrameRefusal | undefined {
    if (!this.authenticated) {
      this.received += chunk.length;
      if (this.received > this.limits.preAuthBytes) return 'unauthenticated_too_large';
    }
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        if (this.type !== SUBSCRIBE) {
          const skip = Math.min(this.remaining, chunk.length - i);
          this.remaining -= skip;
          i += skip;
        } else {
          this.subscribeByte(chunk, i);
          this.remaining--;
          i++;
        }
        if (this.remaining === 0) this.type = -1;
        continue;
      }
      const byte = chunk[i++]!;
      if (this.type === -1) {
        this.type = byte >> 4;
        this.length = 0;
        this.lengthBytes = 0;
        continue;
      }
      // Remaining length: 7 bits a byte, least significant first, at most 4 bytes [MQTT-2.2.3].
      this.length += (byte & 0x7f) * 128 ** this.lengthBytes++;
      if (byte & 0x80) {
        if (this.lengthBytes === 4) return 'malformed_length';
        continue;
      }
      const bound = this.authenticated ? this.limits.maxPacketBytes : this.limits.preAuthBytes;
      if (this.length > bound) return this.authenticated ? 'packet_too_large' : 'unauthenticated_too_large';
      this.remaining = this.length;
      this.sub = 'id';
      this.subCount = 0;
      if (this.remaining === 0) this.type = -1;
    }
    return undefined;
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
