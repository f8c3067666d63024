import net from 'node:net';
import { EventEmitter } from 'node:events';
import { cmdTopic, deviceIdFromPublicKey, generateDeviceKey, signDeviceJwt, telemetryTopic } from '@kernex/shared';
import type { Client } from 'aedes';
import mqtt from 'mqtt';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryDeviceDirectory } from './device-directory.js';
import { createBroker, type KernexBroker } from './index.js';

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

/** What an Aedes client keeps of its parser for the whole session (aedes 1.x, mqtt-packet 9.x). */
interface ParserView {
  _list: object;
  settings: Record<string, unknown>;
}

describe('what the broker keeps per connected device', () => {
  let broker: KernexBroker;
  let port: number;
  let device: { id: string; jwt: string };

  beforeEach(async () => {
    const directory = new MemoryDeviceDirectory();
    const keys = await generateDeviceKey('p256');
    const id = deviceIdFromPublicKey(keys.publicKeyPem);
    device = { id, jwt: await signDeviceJwt({ privateKey: keys.privateKeyPem, deviceId: id, aud: 'kernex-mqtt' }) };
    directory.set(id, { publicKey: keys.publicKeyPem, status: 'accepted' });
    broker = await createBroker({ log: pino({ level: 'silent' }), registry: new Registry(), directory });
    await broker.listen({ host: '127.0.0.1', mqttPort: 0 });
    port = broker.listeners[0]!.port;
  });
  afterEach(async () => {
    await broker.close();
  });

  it('reads an authenticated session from the socket itself, without its CONNECT packet or a stream for unparsed bytes', async () => {
    const online = new Promise<void>((resolve) => broker.once('device:connect', () => resolve()));
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: device.id, username: device.id, password: device.jwt, reconnectPeriod: 0 });
    await online;
    const held = (broker.aedes as unknown as { clients: Record<string, Client> }).clients[device.id]!;
    // No wrapper stream between the socket and Aedes.
    expect(held.conn).toBeInstanceOf(net.Socket);
    const parser = (held as unknown as { _parser: ParserView })._parser;
    expect(parser.settings).toEqual({ protocolVersion: 4, bridgeMode: undefined });
    expect(parser._list).not.toBeInstanceOf(EventEmitter);
    await client.endAsync();
  });

  it('parses a session sent one byte at a time: subscribe, telemetry, and the commands it was sent', async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const bytes = async (b: Buffer): Promise<void> => {
      for (const byte of b) await new Promise<void>((resolve) => socket.write(Buffer.from([byte]), () => resolve()));
    };
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const subscribed = new Promise<void>((resolve) => broker.once('device:subscribed', () => resolve()));
    const telemetry = new Promise<unknown>((resolve) => broker.once('device:telemetry', (_id, t) => resolve(t)));
    await bytes(packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str(device.id), str(device.id), str(device.jwt)])));
    await bytes(packet(0x82, Buffer.concat([Buffer.from([0, 1]), str(cmdTopic(device.id)), Buffer.from([1])])));
    await subscribed;
    const sample = { ts: 101, cpu: 1 };
    await bytes(packet(0x30, Buffer.concat([str(telemetryTopic(device.id)), Buffer.from(JSON.stringify(sample))])));
    expect(await telemetry).toEqual(sample);

    const command = { id: 'c1', type: 'cancel' as const, executionId: 'e1', issuedAt: new Date().toISOString() };
    await broker.publishCommand(device.id, command);
    const json = Buffer.from(JSON.stringify(command));
    await expect.poll(() => Buffer.concat(received).includes(json)).toBe(true);
    socket.destroy();
  });

  it('keeps a persistent session, its subscription and the QoS 1 commands sent while the device was away, across a reconnect', async () => {
    const opts = { clientId: device.id, username: device.id, password: device.jwt, reconnectPeriod: 0, clean: false };
    const first = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, opts);
    await first.subscribeAsync(cmdTopic(device.id), { qos: 1 });
    const offline = new Promise<void>((resolve) => broker.once('device:disconnect', () => resolve()));
    await first.endAsync();
    await offline;
    const commands = ['c1', 'c2'].map((id) => ({ id, type: 'cancel' as const, executionId: `e-${id}`, issuedAt: new Date().toISOString() }));
    for (const c of commands) await broker.publishCommand(device.id, c);

    const received: unknown[] = [];
    const second = mqtt.connect(`mqtt://127.0.0.1:${port}`, opts);
    second.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString())));
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => second.once('connect', resolve));
    expect(connack.sessionPresent).toBe(true);
    await expect.poll(() => received).toEqual(commands);
    await second.endAsync();
  });
});
