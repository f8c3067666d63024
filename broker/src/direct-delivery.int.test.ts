import { cmdTopic, deviceIdFromPublicKey, generateDeviceKey, signDeviceJwt, type Command } from '@kernex/shared';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryDeviceDirectory } from './device-directory.js';
import { subscribedClient } from './direct-delivery.js';
import { createBroker, type KernexBroker } from './index.js';

describe('commands handed straight to a device connection (single node)', () => {
  let broker: KernexBroker;
  let url: string;
  let device: { id: string; jwt: string };
  const clients: MqttClient[] = [];

  beforeEach(async () => {
    const directory = new MemoryDeviceDirectory();
    const keys = await generateDeviceKey('p256');
    const id = deviceIdFromPublicKey(keys.publicKeyPem);
    directory.set(id, { publicKey: keys.publicKeyPem, status: 'accepted' });
    device = { id, jwt: await signDeviceJwt({ privateKey: keys.privateKeyPem, deviceId: id, aud: 'kernex-mqtt' }) };
    broker = await createBroker({ log: pino({ level: 'silent' }), registry: new Registry(), directory });
    await broker.listen({ host: '127.0.0.1', mqttPort: 0 });
    url = `mqtt://127.0.0.1:${broker.listeners[0]!.port}`;
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await broker.close();
  });

  /** A persistent session; `onMessage` is listening before CONNACK, so a queued command that follows it is not missed. */
  const connect = async (options: IClientOptions = {}, onMessage?: (payload: Buffer, packet: { qos: number }) => void): Promise<MqttClient> => {
    const c = mqtt.connect(url, { clientId: device.id, username: device.id, password: device.jwt, clean: false, reconnectPeriod: 0, protocolVersion: 4, ...options });
    clients.push(c);
    if (onMessage) c.on('message', (_t, payload, packet) => onMessage(payload, packet));
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
    return c;
  };
  const command = (n: number): Command => ({ id: `c${n}`, type: 'cancel', executionId: `e${n}`, issuedAt: '2026-12-01T12:00:00.000Z' });

  it('finds the device connection only once its cmd subscription is granted, and not after it closed', async () => {
    const topic = cmdTopic(device.id);
    const c = await connect();
    expect(subscribedClient(broker.aedes, device.id, topic)).toBeUndefined();
    await c.subscribeAsync(topic, { qos: 1 });
    expect(subscribedClient(broker.aedes, device.id, topic)?.id).toBe(device.id);
    expect(subscribedClient(broker.aedes, device.id, `${topic}/other`)).toBeUndefined();
    await c.endAsync();
    await expect.poll(() => subscribedClient(broker.aedes, device.id, topic)).toBeUndefined();
  });

  it('keeps a command handed to a connection in its persistent session until PUBACK, and sends it again on reconnect', async () => {
    const topic = cmdTopic(device.id);
    // A device that takes the command but never acknowledges it (MQTT.js sends the PUBACK when handleMessage calls back).
    const unacked: Buffer[] = [];
    const first = await connect({}, (payload) => unacked.push(payload));
    first.handleMessage = () => undefined;
    await first.subscribeAsync(topic, { qos: 1 });
    await broker.publishCommand(device.id, command(1));
    await expect.poll(() => unacked.length).toBe(1);
    expect(JSON.parse(unacked[0]!.toString())).toEqual(command(1));
    await first.endAsync(true);
    await expect.poll(() => broker.isOnline(device.id)).toBe(false);

    const again: Array<{ payload: Buffer; qos: number }> = [];
    await connect({}, (payload, packet) => again.push({ payload, qos: packet.qos }));
    await expect.poll(() => again.length).toBe(1);
    expect(JSON.parse(again[0]!.payload.toString())).toEqual(command(1));
    expect(again[0]!.qos).toBe(1);
  });

  it('queues a command for an offline persistent session and delivers it, once, when the device is back', async () => {
    const topic = cmdTopic(device.id);
    const c = await connect();
    await c.subscribeAsync(topic, { qos: 1 });
    await c.endAsync();
    await expect.poll(() => broker.isOnline(device.id)).toBe(false);
    await broker.publishCommand(device.id, command(2));

    const received: Command[] = [];
    await connect({}, (payload) => received.push(JSON.parse(payload.toString()) as Command));
    await expect.poll(() => subscribedClient(broker.aedes, device.id, topic)).toBeDefined();
    await broker.publishCommand(device.id, command(3)); // on the live, restored subscription: straight to the connection
    await expect.poll(() => received.map((r) => r.id)).toEqual(['c2', 'c3']);
  });
});
