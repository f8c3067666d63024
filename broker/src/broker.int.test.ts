import { deviceIdFromPublicKey, generateDeviceKey, signDeviceJwt } from '@kernex/shared';
import mqtt from 'mqtt';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryDeviceDirectory, type DeviceRecord } from './device-directory.js';
import { createBroker, type KernexBroker } from './index.js';

/** The memory directory, counting lookups to show what the credential cache saves. */
class CountingDirectory extends MemoryDeviceDirectory {
  lookups = 0;
  override async lookup(deviceId: string): Promise<DeviceRecord | undefined> {
    this.lookups++;
    return super.lookup(deviceId);
  }
}

describe('the broker on its own, with an in-memory directory', () => {
  let broker: KernexBroker;
  let directory: CountingDirectory;
  let url: string;
  let device: { id: string; privateKeyPem: string };

  beforeEach(async () => {
    directory = new CountingDirectory();
    const keys = await generateDeviceKey('p256');
    device = { id: deviceIdFromPublicKey(keys.publicKeyPem), privateKeyPem: keys.privateKeyPem };
    directory.set(device.id, { publicKey: keys.publicKeyPem, status: 'accepted' });
    broker = await createBroker({ log: pino({ level: 'silent' }), registry: new Registry(), directory });
    await broker.listen({ host: '127.0.0.1', mqttPort: 0 });
    url = `mqtt://127.0.0.1:${broker.listeners[0]!.port}`;
  });
  afterEach(async () => {
    await broker.close();
  });

  const connect = (password: string) =>
    mqtt.connectAsync(url, { clientId: device.id, username: device.id, password, reconnectPeriod: 0, protocolVersion: 4 });

  it('verifies a JWT once and answers reconnects with it from the cache until disconnectDevice', async () => {
    const jwt = await signDeviceJwt({ privateKey: device.privateKeyPem, deviceId: device.id, aud: 'kernex-mqtt' });
    for (let i = 0; i < 5; i++) await (await connect(jwt)).endAsync();
    expect(directory.lookups).toBe(1);

    const other = await signDeviceJwt({ privateKey: device.privateKeyPem, deviceId: device.id, aud: 'kernex-mqtt', ttlS: 600 });
    await (await connect(other)).endAsync();
    expect(directory.lookups).toBe(2);

    // A status change reaches the broker through disconnectDevice: the cache entry goes with the session.
    const live = await connect(other);
    const closed = new Promise<void>((resolve) => live.once('close', () => resolve()));
    directory.set(device.id, { ...directory.devices.get(device.id)!, status: 'decommissioned' });
    await broker.disconnectDevice(device.id);
    await closed;
    await live.endAsync(true);
    await expect(connect(other)).rejects.toMatchObject({ code: 5 });
    expect(directory.lookups).toBe(3);
  });

  it('reports presence to the directory from its own events', async () => {
    const jwt = await signDeviceJwt({ privateKey: device.privateKeyPem, deviceId: device.id, aud: 'kernex-mqtt' });
    const connected = new Promise<void>((resolve) => broker.once('device:connect', () => resolve()));
    const client = await connect(jwt);
    await connected;
    expect(directory.presence.get(device.id)?.online).toBe(true);
    expect(broker.isOnline(device.id)).toBe(true);
    const gone = new Promise<void>((resolve) => broker.once('device:disconnect', () => resolve()));
    await client.endAsync();
    await gone;
    expect(directory.presence.get(device.id)?.online).toBe(false);
  });

  it('answers CONNACK 3 "server unavailable" when the directory fails', async () => {
    directory.lookup = async () => {
      throw new Error('database down');
    };
    const jwt = await signDeviceJwt({ privateKey: device.privateKeyPem, deviceId: device.id, aud: 'kernex-mqtt' });
    await expect(connect(jwt)).rejects.toMatchObject({ code: 3 });
  });
});
