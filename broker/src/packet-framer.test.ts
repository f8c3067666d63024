import { describe, expect, it } from 'vitest';
import { PacketFramer } from './packet-framer.js';

const limits = { preAuthBytes: 64 * 1024, maxPacketBytes: 17 * 1024 };

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

/** Feeds `bytes` split into chunks of `size`, returning the first refusal. */
function feed(framer: PacketFramer, bytes: Buffer, size = bytes.length): string | undefined {
  for (let i = 0; i < bytes.length; i += size) {
    const refusal = framer.inspect(bytes.subarray(i, i + size));
    if (refusal) return refusal;
  }
  return undefined;
}

describe('PacketFramer', () => {
  it('refuses a CONNECT that announces more than 64 KiB from its fixed header alone', () => {
    // 0x10, remaining length 268,435,455 (the MQTT maximum): nothing of the body yet.
    expect(new PacketFramer(limits).inspect(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]))).toBe('unauthenticated_too_large');
  });

  it('refuses more than 64 KiB before the CONNACK, however it is split into packets', () => {
    const framer = new PacketFramer(limits);
    expect(feed(framer, connect)).toBeUndefined();
    const pings = Buffer.alloc(64 * 1024, Buffer.from([0xc0, 0x00]));
    expect(feed(framer, pings, 1000)).toBe('unauthenticated_too_large');
  });

  it('passes a whole session of packets split at every byte once authenticated', () => {
    const framer = new PacketFramer(limits);
    expect(feed(framer, connect, 1)).toBeUndefined();
    framer.authenticated = true;
    expect(feed(framer, Buffer.concat(Array.from({ length: 20 }, () => publish(16 * 1024))), 1)).toBeUndefined();
  });

  it('refuses a packet announcing more than the payload limit after authentication, before its body', () => {
    const big = publish(20 * 1024);
    expect(authenticated().inspect(big.subarray(0, 4))).toBe('packet_too_large');
    expect(feed(authenticated(), publish(16 * 1024))).toBeUndefined();
  });

  it('refuses a remaining length longer than four bytes', () => {
    expect(authenticated().inspect(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))).toBe('malformed_length');
  });

  it('rewrites a SUBSCRIBE asking for QoS 2 to ask for 1, in every filter and at any split', () => {
    for (const size of [1, 3, 1000]) {
      const sub = subscribe([['kx/d1/cmd', 2], ['a', 0], ['kx/#', 2]]);
      expect(sub.qosAt.map((at) => sub.bytes[at])).toEqual([2, 0, 2]);
      const before = publish(10);
      const bytes = Buffer.concat([before, sub.bytes, publish(10)]);
      expect(feed(authenticated(), bytes, size)).toBeUndefined();
      expect(sub.qosAt.map((at) => bytes[before.length + at])).toEqual([1, 0, 1]);
    }
  });
});
