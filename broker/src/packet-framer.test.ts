import { describe, expect, it } from 'vitest';
import { PacketFramer } from './packet-framer.js';

const limits = { preAuthBytes: 64 * 1024, maxPacketBytes: 17 * 1024, maxPayloadBytes: 16 * 1024 };

/** An MQTT 3.1.1 packet: fixed header byte, remaining length [MQTT-2.2.3], body. */
function packet(first: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    len.push((n % 128) | (n >= 128 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.concat([Buffer.from([first, ...len]), body]);
}
const str = (s: string): Buffer => Buffer.concat([Buffer.from([s.length >> 8, s.length & 0xff]), Buffer.from(s)]);
const connect = packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0xc0, 0, 60]), str('d1'), str('d1'), str('jwt')]));
const publish = (bytes: number): Buffer => packet(0x32, Buffer.concat([str('kx/d1/telemetry'), Buffer.from([0, 7]), Buffer.alloc(bytes, 0x20)]));
/** A SUBSCRIBE and where each filter's requested QoS byte is in it. */
function subscribe(filters: Array<[string, number]>): { bytes: Buffer; qosAt: number[] } {
  const body = Buffer.concat([Buffer.from([0, 9]), ...filters.map(([topic, qos]) => Buffer.concat([str(topic), Buffer.from([qos])]))]);
  const bytes = packet(0x82, body);
  const qosAt: number[] = [];
  let at = bytes.length - body.length + 2; // after the fixed header and the message id
  for (const [topic] of filters) {
    at += 2 + topic.length;
    qosAt.push(at++);
  }
  return { bytes, qosAt };
}
const authenticated = (): PacketFramer => Object.assign(new PacketFramer(limits), { authenticated: true });

/** Feeds `bytes` split into chunks of `size`: the first refusal, and what was handed on. */
function feed(framer: PacketFramer, bytes: Buffer, size = bytes.length): { refusal: string | undefined; out: Buffer } {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    const refusal = framer.inspect(bytes.subarray(i, i + size), (b) => out.push(Buffer.from(b)));
    if (refusal) return { refusal, out: Buffer.concat(out) };
  }
  return { refusal: undefined, out: Buffer.concat(out) };
}

describe('PacketFramer', () => {
  it('refuses a CONNECT that announces more than 64 KiB from its fixed header alone', () => {
    // 0x10, remaining length 268,435,455 (the MQTT maximum): nothing of the body yet.
    expect(feed(new PacketFramer(limits), Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])).refusal).toBe('unauthenticated_too_large');
  });

  it('refuses more than 64 KiB before the CONNACK, however it is split into packets', () => {
    const framer = new PacketFramer(limits);
    expect(feed(framer, connect).refusal).toBeUndefined();
    const pings = Buffer.alloc(64 * 1024, Buffer.from([0xc0, 0x00]));
    expect(feed(framer, pings, 1000).refusal).toBe('unauthenticated_too_large');
  });

  it('hands on a whole session of packets unchanged, split at any byte, once authenticated', () => {
    for (const size of [1, 2, 3, 7, 1000, 65536]) {
      const framer = new PacketFramer(limits);
      const first = feed(framer, connect, size);
      expect(first).toEqual({ refusal: undefined, out: connect });
      framer.authenticated = true;
      const session = Buffer.concat([...Array.from({ length: 5 }, () => publish(16 * 1024)), Buffer.from([0xc0, 0x00]), publish(0), publish(200)]);
      expect(feed(framer, session, size)).toEqual({ refusal: undefined, out: session });
    }
  });

  it('cuts a PUBLISH announcing more than the limit to one byte more payload than allowed, and drops the rest as it comes', () => {
    for (const size of [1, 3, 5000, 65536]) {
      const big = publish(300 * 1024);
      const after = publish(10);
      const { refusal, out } = feed(authenticated(), Buffer.concat([big, after]), size);
      expect(refusal).toBeUndefined();
      const cut = publish(16 * 1024 + 1);
      expect(out.equals(Buffer.concat([cut, after]))).toBe(true);
    }
    // The cut packet goes on as soon as its kept bytes are in, however much more was announced.
    const announced = Buffer.concat([Buffer.from([0x32, 0xff, 0xff, 0xff, 0x7f]), str('kx/d1/telemetry'), Buffer.from([0, 7]), Buffer.alloc(40_000, 0x20)]);
    expect(feed(authenticated(), announced, 4096)).toEqual({ refusal: undefined, out: publish(16 * 1024 + 1) });
  });

  it('closes the connection on any other packet announcing more than the limit, before its body', () => {
    expect(feed(authenticated(), Buffer.from([0x82, 0x80, 0x80, 0x40])).refusal).toBe('packet_too_large');
    expect(feed(authenticated(), publish(16 * 1024)).refusal).toBeUndefined();
  });

  it('refuses a remaining length longer than four bytes', () => {
    expect(feed(authenticated(), Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01])).refusal).toBe('malformed_length');
  });

  it('rewrites a SUBSCRIBE asking for QoS 2 to ask for 1, in every filter and at any split', () => {
    for (const size of [1, 3, 1000]) {
      const sub = subscribe([['kx/d1/cmd', 2], ['a', 0], ['kx/#', 2]]);
      expect(sub.qosAt.map((at) => sub.bytes[at])).toEqual([2, 0, 2]);
      const before = publish(10);
      const bytes = Buffer.concat([before, sub.bytes, publish(10)]);
      const { refusal, out } = feed(authenticated(), bytes, size);
      expect(refusal).toBeUndefined();
      expect(sub.qosAt.map((at) => out[before.length + at])).toEqual([1, 0, 1]);
    }
  });
});
