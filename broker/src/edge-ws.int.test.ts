import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MemoryDeviceDirectory } from './device-directory.js';
import { createBroker, type KernexBroker } from './index.js';

describe('the broker edge over WebSocket', () => {
  let broker: KernexBroker;
  let registry: Registry;
  let url: string;

  beforeAll(async () => {
    registry = new Registry();
    broker = await createBroker({ log: pino({ level: 'silent' }), registry, directory: new MemoryDeviceDirectory() });
    await broker.listen({ host: '127.0.0.1', mqttPort: 0, wsPort: 0 });
    url = `ws://127.0.0.1:${broker.listeners.find((l) => l.kind === 'ws')!.port}`;
  });
  afterAll(async () => {
    await broker.close();
  });

  it('closes a WebSocket whose CONNECT announces 268 MB and counts it', async () => {
    const socket = new WebSocket(url, 'mqtt');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('open', resolve));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.send(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]));
    // Keep streaming messages until the server closes: without a bound it buffers them all.
    const filler = Buffer.alloc(16 * 1024, 0x41);
    let open = true;
    void closed.then(() => (open = false));
    for (let i = 0; open && i < 512; i++) {
      socket.send(filler);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await closed;
    const { values } = await registry.getSingleMetric('kernex_mqtt_refused_total')!.get();
    expect(values.find((v) => v.labels.reason === 'unauthenticated_too_large')?.value).toBe(1);
  });
});
