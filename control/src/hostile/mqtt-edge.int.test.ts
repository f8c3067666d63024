import { spawn } from 'node:child_process';
import net from 'node:net';
import { createBroker, MemoryDeviceDirectory, type KernexBroker } from '@kernex/broker';
import { cmdTopic, telemetryTopic } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { connectDevice, metric } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

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
const str = (s: string): Buffer => Buffer.concat([Buffer.from([Buffer.byteLength(s) >> 8, Buffer.byteLength(s) & 0xff]), Buffer.from(s)]);
/** A CONNECT with clientId = username = deviceId and the JWT as password, clean session, keepalive 60 s. */
const connectPacket = (id: string, jwt: string): Buffer =>
  packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str(id), str(id), str(jwt)]));
/** The fixed header of a packet announcing the largest remaining length MQTT allows (268,435,455 bytes). */
const HUGE = (first: number): Buffer => Buffer.from([first, 0xff, 0xff, 0xff, 0x7f]);

/** A raw TCP socket to the broker; `closed` resolves when the other side closes it (we never do before). */
function rawSocket(port: number): { socket: net.Socket; closed: Promise<void> } {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {}); // EPIPE / ECONNRESET once the server has closed it
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, closed };
}

/**
 * Writes `head`, then streams filler in 16 KiB chunks (with backpressure) until
 * the server closes the socket or `cap` bytes are written; resolves once it is
 * closed. Without a bound on the server this never resolves.
 */
async function stream(sock: ReturnType<typeof rawSocket>, head: Buffer, cap = 8 * 1024 * 1024): Promise<void> {
  let open = true;
  void sock.closed.then(() => (open = false));
  const filler = Buffer.alloc(16 * 1024, 0x41);
  if (!sock.socket.write(head)) await new Promise((r) => sock.socket.once('drain', r));
  for (let written = 0; open && written < cap; written += filler.length) {
    if (!sock.socket.write(filler)) await Promise.race([new Promise((r) => sock.socket.once('drain', r)), sock.closed]);
  }
  await sock.closed;
}

/** Resolves with the first `device:telemetry` from `deviceId` whose `ts` is `ts`. */
function telemetryArrives(broker: KernexBroker, deviceId: string, ts: number): Promise<void> {
  return new Promise((resolve) => {
    const on = (id: string, t: { ts?: number }): void => {
      if (id !== deviceId || t.ts !== ts) return;
      broker.off('device:telemetry', on);
      resolve();
    };
    broker.on('device:telemetry', on);
  });
}

describe('the MQTT edge of a real server under hostile clients', () => {
  let server: TestServer;
  let url: string;
  let a: TestDevice;
  let b: TestDevice;
  let deviceA: MqttClient;
  let deviceB: MqttClient;
  const refused = (reason: string): Promise<number> => metric(server.httpUrl, 'kernex_mqtt_refused_total', { reason });

  beforeAll(async () => {
    server = await startTestServer();
    url = `mqtt://127.0.0.1:${server.mqttPort}`;
    const token = (await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 2, expiresInS: 600 })).body.token;
    [a, b] = await Promise.all([makeDevice(), makeDevice()]);
    for (const d of [a, b]) expect((await register(server.httpUrl, d, { enrollmentToken: token })).body.status).toBe('accepted');
    [deviceA, deviceB] = await Promise.all([connectDevice(url, a), connectDevice(url, b)]);
  });
  afterAll(async () => {
    await Promise.all([deviceA?.endAsync(true), deviceB?.endAsync(true)]);
    await server?.stop();
  });

  it('closes connections whose CONNECT announces 268 MB as soon as it is announced, counts each, and keeps serving a device', async () => {
    const before = await refused('unauthenticated_too_large');
    const sockets = Array.from({ length: 6 }, () => rawSocket(server.mqttPort));
    await Promise.all(sockets.map((s) => stream(s, HUGE(0x10))));
    expect(await refused('unauthenticated_too_large')).toBe(before + 6);

    // A first PUBLISH announcing as much is no better.
    const publishFirst = rawSocket(server.mqttPort);
    await stream(publishFirst, HUGE(0x30));
    expect(await refused('unauthenticated_too_large')).toBe(before + 7);

    const arrived = telemetryArrives(server.broker, a.id, 101);
    await deviceA.publishAsync(telemetryTopic(a.id), JSON.stringify({ ts: 101, cpu: 1 }), { qos: 1 });
    await arrived;
  });

  it('acknowledges and drops a PUBLISH announcing 268 MB before its body has arrived, and closes on any other oversized packet', async () => {
    const other = await makeDevice();
    const token = (await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 1, expiresInS: 600 })).body.token;
    await register(server.httpUrl, other, { enrollmentToken: token });
    const connectRaw = async (): Promise<ReturnType<typeof rawSocket> & { next: () => Promise<Buffer> }> => {
      const sock = rawSocket(server.mqttPort);
      const queue: Buffer[] = [];
      let wake: (() => void) | undefined;
      sock.socket.on('data', (d: Buffer) => {
        queue.push(d);
        wake?.();
      });
      const next = async (): Promise<Buffer> => {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        return queue.shift()!;
      };
      sock.socket.write(connectPacket(other.id, await other.jwt('kernex-mqtt')));
      expect([...(await next()).subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]); // CONNACK accepted
      return Object.assign(sock, { next });
    };

    // QoS 1 PUBLISH to its own telemetry, message id 7, announcing the largest length MQTT allows.
    const before = await refused('payload_too_large');
    const publisher = await connectRaw();
    const puback = publisher.next();
    let acked = false;
    void puback.then(() => (acked = true));
    publisher.socket.write(Buffer.concat([HUGE(0x32), str(telemetryTopic(other.id)), Buffer.from([0, 7])]));
    const filler = Buffer.alloc(16 * 1024, 0x20);
    for (let sent = 0; !acked && sent < 8 * 1024 * 1024; sent += filler.length) {
      if (!publisher.socket.write(filler)) await Promise.race([new Promise((r) => publisher.socket.once('drain', r)), puback]);
    }
    // The PUBACK came while 260 MB of the packet were still to come: the broker did not wait to buffer them.
    expect([...(await puback)]).toEqual([0x40, 0x02, 0x00, 0x07]);
    expect(await refused('payload_too_large')).toBe(before + 1);
    publisher.socket.destroy();
    await publisher.closed;

    // A SUBSCRIBE announcing 1 MiB has no such way out: the connection is closed.
    const tooLarge = await refused('packet_too_large');
    const subscriber = await connectRaw();
    await stream(subscriber, Buffer.from([0x82, 0x80, 0x80, 0x40]));
    expect(await refused('packet_too_large')).toBe(tooLarge + 1);
  });

  it('grants QoS 1 when a device asks for QoS 2 on its cmd, to MQTT.js and to mosquitto_sub', async () => {
    expect(await deviceA.subscribeAsync(cmdTopic(a.id), { qos: 2 })).toEqual([{ topic: cmdTopic(a.id), qos: 1 }]);

    const other = await makeDevice();
    const token = (await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 1, expiresInS: 600 })).body.token;
    await register(server.httpUrl, other, { enrollmentToken: token });
    const jwt = await other.jwt('kernex-mqtt');
    const subscribed = new Promise<void>((resolve) => {
      const on = (id: string): void => {
        if (id !== other.id) return;
        server.broker.off('device:subscribed', on);
        resolve();
      };
      server.broker.on('device:subscribed', on);
    });
    const args = ['-h', '127.0.0.1', '-p', String(server.mqttPort), '-i', other.id, '-u', other.id, '-P', jwt, '-V', 'mqttv311'];
    const sub = spawn('mosquitto_sub', [...args, '-t', cmdTopic(other.id), '-q', '2', '-d', '-C', '1', '-W', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    sub.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => sub.once('close', (code) => resolve(code)));
    // mosquitto_sub's output is block-buffered on a pipe: send it one command so it exits (-C 1) and flushes.
    await subscribed;
    await server.broker.publishCommand(other.id, { id: 'c1', type: 'cancel', executionId: 'e1', issuedAt: new Date().toISOString() });
    expect(await exited).toBe(0);
    // -d prints the SUBACK's granted QoS list: "Subscribed (mid: 1): 1".
    expect(/Subscribed \(mid: \d+\): (\d+)/.exec(out)?.[1]).toBe('1');
  });

  it('refuses telemetry holding NUL or a lone surrogate in a value or a key, alone, and takes the next honest samples', async () => {
    const before = await refused('invalid_string');
    const bad = ['{"ts":1,"v":"a\\u0000b"}', '{"ts":2,"v":"\\ud800"}', '{"ts":3,"b":{"app\\u0000":"1.0.0"}}', '{"ts":4,"x\\udc00":1}'];
    for (const payload of bad) await deviceA.publishAsync(telemetryTopic(a.id), payload, { qos: 1 });
    // The PUBACK of each came after the broker looked at it.
    expect(await refused('invalid_string')).toBe(before + bad.length);

    const fromA = telemetryArrives(server.broker, a.id, 201);
    const fromB = telemetryArrives(server.broker, b.id, 202);
    await deviceA.publishAsync(telemetryTopic(a.id), JSON.stringify({ ts: 201, cpu: 2 }), { qos: 1 });
    await deviceB.publishAsync(telemetryTopic(b.id), JSON.stringify({ ts: 202, cpu: 3 }), { qos: 1 });
    await Promise.all([fromA, fromB]);
    // And they are stored: nothing bad reached the batch ahead of them.
    for (const [d, cpu] of [[a, 2], [b, 3]] as const) {
      await expect
        .poll(async () => (await api('GET', `${server.httpUrl}/api/v1/devices/${d.id}`, server.adminHeaders)).body.telemetry)
        .toMatchObject({ cpu });
    }
  });
});

describe('the broker bounds unauthenticated connections per address and in time', () => {
  let broker: KernexBroker;
  let registry: Registry;
  let port: number;
  let device: TestDevice;
  let client: MqttClient;
  const LIMIT = 4;
  const value = async (name: string, reason?: string): Promise<number> => {
    const { values } = await registry.getSingleMetric(name)!.get();
    return values.find((v) => reason === undefined || v.labels.reason === reason)?.value ?? 0;
  };

  beforeAll(async () => {
    const directory = new MemoryDeviceDirectory();
    device = await makeDevice();
    directory.set(device.id, { publicKey: device.publicKeyPem, status: 'accepted' });
    registry = new Registry();
    broker = await createBroker({ log: pino({ level: 'silent' }), registry, directory, maxUnauthenticatedPerAddress: LIMIT, connectTimeoutMs: 60_000 });
    await broker.listen({ host: '127.0.0.1', mqttPort: 0 });
    port = broker.listeners[0]!.port;
    client = await connectDevice(`mqtt://127.0.0.1:${port}`, device);
  });
  afterAll(async () => {
    await client?.endAsync(true);
    await broker?.close();
  });

  it('refuses sockets beyond the bound from one address and counts them, while an authenticated device keeps working', async () => {
    // The authenticated device does not take one of the slots.
    const idle = Array.from({ length: LIMIT }, () => rawSocket(port));
    await expect.poll(() => value('kernex_mqtt_unauthenticated_connections')).toBe(LIMIT);
    const extra = Array.from({ length: 3 }, () => rawSocket(port));
    await Promise.all(extra.map((s) => s.closed));
    expect(await value('kernex_mqtt_refused_total', 'unauthenticated_limit')).toBe(3);

    const arrived = telemetryArrives(broker, device.id, 301);
    await client.publishAsync(telemetryTopic(device.id), JSON.stringify({ ts: 301 }), { qos: 1 });
    await arrived;

    // A slot frees when its socket goes: a device connects again from the same address.
    idle[0]!.socket.destroy();
    await idle[0]!.closed;
    await expect.poll(() => value('kernex_mqtt_unauthenticated_connections')).toBe(LIMIT - 1);
    const second = await connectDevice(`mqtt://127.0.0.1:${port}`, device);
    await second.endAsync(true);
    for (const s of idle) s.socket.destroy();
    await Promise.all(idle.map((s) => s.closed));
    await expect.poll(() => value('kernex_mqtt_unauthenticated_connections')).toBe(0);
  });
});

describe('the broker closes a connection that never sends CONNECT', () => {
  it('closes it after the connect timeout and counts it', async () => {
    const registry = new Registry();
    const broker = await createBroker({ log: pino({ level: 'silent' }), registry, directory: new MemoryDeviceDirectory(), connectTimeoutMs: 200 });
    try {
      await broker.listen({ host: '127.0.0.1', mqttPort: 0 });
      const silent = rawSocket(broker.listeners[0]!.port);
      await silent.closed;
      const { values } = await registry.getSingleMetric('kernex_mqtt_refused_total')!.get();
      expect(values.find((v) => v.labels.reason === 'connect_timeout')?.value).toBe(1);
    } finally {
      await broker.close();
    }
  });
});
