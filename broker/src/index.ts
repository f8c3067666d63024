import net from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { closeServer, listen, type BoundListener } from './listeners.js';
import { createBrokerMetrics, type BrokerMetrics } from './metrics.js';

export type { BoundListener } from './listeners.js';
export type { BrokerMetrics } from './metrics.js';

/** Options of {@link createBroker}. The broker reads no environment: the server passes everything. */
export interface BrokerOptions {
  log: Logger;
  /** Registry the broker's metrics are registered on (the server's `/metrics`). */
  registry: Registry;
}

/** Where the broker should listen. Port 0 picks any free port. */
export interface ListenOptions {
  host: string;
  mqttPort: number;
}

/** The embedded MQTT broker of a Kernex server. */
export interface KernexBroker {
  readonly aedes: Aedes;
  readonly metrics: BrokerMetrics;
  /** Bound listeners, in the order they were opened. */
  readonly listeners: readonly BoundListener[];
  /** Starts the listeners; rejects with the first listen error. */
  listen(options: ListenOptions): Promise<void>;
  /** True while every listener accepts connections. */
  isListening(): boolean;
  /** Stops accepting, disconnects every client and closes the broker. */
  close(): Promise<void>;
}

/** Builds the Aedes broker with Kernex's hooks and metrics. */
export async function createBroker(options: BrokerOptions): Promise<KernexBroker> {
  const log = options.log.child({ mod: 'broker' });
  const metrics = createBrokerMetrics(options.registry);
  const aedes = await Aedes.createBroker({});
  const listeners: BoundListener[] = [];

  aedes.on('client', () => metrics.devicesConnected.inc());
  aedes.on('clientDisconnect', () => metrics.devicesConnected.dec());
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'connection error'));

  return {
    aedes,
    metrics,
    listeners,
    async listen({ host, mqttPort }) {
      const server = net.createServer(aedes.handle);
      const port = await listen(server, mqttPort, host);
      listeners.push({ kind: 'mqtt', server, port });
      log.info({ port, host }, 'mqtt listening');
    },
    isListening() {
      return listeners.length > 0 && listeners.every((l) => l.server.listening);
    },
    async close() {
      // Stop accepting first, then drop the clients still connected.
      const closing = listeners.map((l) => closeServer(l.server));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await Promise.all(closing);
    },
  };
}
