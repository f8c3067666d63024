import type { BrokerEvents, KernexBroker } from '@kernex/broker';
import type { Command } from '@kernex/shared';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { TestDevice } from './devices.js';

/**
 * Connects a real MQTT.js client as a device: clientId = username = deviceId,
 * password = a fresh kernex-mqtt JWT, unless `opts` overrides them. No
 * reconnects: a refused CONNECT rejects with MQTT.js' error (`code` = CONNACK return code).
 */
export async function connectDevice(url: string, device: TestDevice, opts: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, {
    clientId: device.id,
    username: device.id,
    password: await device.jwt('kernex-mqtt'),
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...opts,
  });
}

/** The CONNACK return code a refused connect got. */
export async function refusalCode(connecting: Promise<MqttClient>): Promise<number | undefined> {
  try {
    const client = await connecting;
    await client.endAsync(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code;
  }
}

/** Resolves when the client's connection closes (the server ended it). */
export const closed = (client: MqttClient): Promise<void> => new Promise((resolve) => client.once('close', () => resolve()));

/** A counter's value from Prometheus text, 0 when absent. */
export async function metric(httpUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{([^}]*)\})? ([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(',') : [];
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(m[3]);
  }
  return 0;
}

/** The SUBACK return codes for `topics` (MQTT.js rejects a SUBACK holding 0x80; this reads it either way). */
export async function subackCodes(client: MqttClient, topics: Record<string, { qos: 0 | 1 | 2 }>): Promise<number[]> {
  try {
    return (await client.subscribeAsync(topics)).map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw err;
    return granted;
  }
}

/** The arguments of the broker's next `name` event. */
export function brokerEvent<K extends keyof BrokerEvents>(broker: KernexBroker, name: K): Promise<BrokerEvents[K]> {
  return new Promise((resolve) => broker.once(name, (...args) => resolve(args)));
}

/** The next message a client receives: topic, payload, packet. */
export function nextMessage(client: MqttClient): Promise<[string, Buffer, IPublishPacket]> {
  return new Promise((resolve) => client.once('message', (topic, payload, packet) => resolve([topic, payload, packet])));
}

/** The next `deploy` command a client receives on any topic (other messages are passed over). */
export function nextCommand(client: MqttClient): Promise<Command> {
  return new Promise((resolve) => {
    const on = (_topic: string, payload: Buffer): void => {
      const command = JSON.parse(payload.toString()) as Command;
      if (command.type !== 'deploy') return;
      client.off('message', on);
      resolve(command);
    };
    client.on('message', on);
  });
}
