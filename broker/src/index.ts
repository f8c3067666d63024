import { EventEmitter } from 'node:events';
import {
  cmdTopic,
  EncodedCommand,
  MAX_DEVICE_PAYLOAD_BYTES,
  type Command,
  type DeviceChannel,
  type DeviceStatusMessage,
  type ExecutionEvent,
  type Telemetry,
} from '@kernex/shared';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createAuthenticate } from './authenticate.js';
import { createAuthorizers } from './authorize.js';
import { ConnectionEdge, CONNECT_TIMEOUT_MS, MAX_UNAUTHENTICATED_PER_ADDRESS, PRE_AUTH_BYTES, type EdgeLimits } from './connection-edge.js';
import { CredentialCache } from './credential-cache.js';
import { subscribedClient } from './direct-delivery.js';
import { createClusterEmitter, type BrokerBus } from './cluster-bus.js';
import type { DeviceDirectory } from './device-directory.js';
import { closeServer, createListeners, listen, type BoundListener } from './listeners.js';
import { createBrokerMetrics, type BrokerMetrics } from './metrics.js';
import { RefusalLog } from './refusal-log.js';
import { Sessions } from './sessions.js';

/** A listener with the port it really got, so a caller that asked for port 0 learns the port to tell devices. */
export type { BoundListener } from './listeners.js';
export { LISTEN_BACKLOG } from './listeners.js';
export { crossesNodes, type BrokerBus, type CrossingPacket } from './cluster-bus.js';
/** The type of `Broker.metrics`, so callers can read the broker's counters without importing prom-client types by hand. */
export type { BrokerMetrics } from './metrics.js';
export { MemoryDeviceDirectory, type DeviceDirectory, type DeviceRecord } from './device-directory.js';
export { DROPPED_TOPIC } from './authorize.js';
export { CONNECT_TIMEOUT_MS, MAX_UNAUTHENTICATED_PER_ADDRESS, PRE_AUTH_BYTES } from './connection-edge.js';

/**
 * Largest remaining length of a packet from an authenticated device: the
 * largest payload plus room for the topic, message id and framing. A larger
 * PUBLISH is cut before it is buffered and refused as too large; any other
 * larger packet closes the connection (DESIGN §3).
 */
export const MAX_DEVICE_PACKET_BYTES = MAX_DEVICE_PAYLOAD_BYTES + 1024;

/** Options of {@link createBroker}. The broker reads no environment: the server passes everything. */
export interface BrokerOptions {
  log: Logger;
  /** Registry the broker's metrics are registered on (the server's `/metrics`). */
  registry: Registry;
  /**
   * Where device keys and statuses come from, and where presence goes. The
   * server always passes one. Without it the broker is open (no
   * authentication, no ACL, no validation): only for broker-level benchmarks.
   */
  directory?: DeviceDirectory;
  /** Connections from one address open at once before their CONNACK; default {@link MAX_UNAUTHENTICATED_PER_ADDRESS}. */
  maxUnauthenticatedPerAddress?: number;
  /** Time from accept to CONNACK before the connection is closed; default {@link CONNECT_TIMEOUT_MS}. */
  connectTimeoutMs?: number;
  /**
   * Stores an execution event (DESIGN §3): its PUBACK is sent only once the
   * returned promise resolves, so an acknowledged event is in the database. A
   * promise that stays pending (database away) withholds the PUBACK; the
   * device keeps the event and sends it again. Without it, events are
   * acknowledged at once (broker-level benchmarks).
   */
  storeEvent?: (deviceId: string, event: ExecutionEvent, connection: { readonly closed: boolean }) => Promise<unknown>;
  /**
   * A cluster node's bus to the other nodes (DESIGN §8): commands and takeovers
   * cross it, everything else stays local. Absent on a single node.
   */
  bus?: BrokerBus;
  /**
   * The installation's time, ms since the epoch, against which device tokens are
   * judged (`iat`, `exp`). A cluster node passes the database's clock (DESIGN §8:
   * a node whose clock is off is judged, and judges, by it); default Date.now.
   */
  now?: () => number;
}

/** Where the broker should listen. Port 0 picks any free port; an absent port means no such listener. */
export interface ListenOptions {
  host: string;
  /** MQTT over TCP. */
  mqttPort: number;
  /** MQTT over TLS; needs `tls`. */
  mqttsPort?: number;
  /** MQTT over WebSocket (plain), for browsers. */
  wsPort?: number;
  /** PEM certificate (chain) and key for `mqttsPort`. */
  tls?: { cert: string; key: string };
}

/**
 * Events of {@link KernexBroker}, all from the broker's own view of the
 * connections and of validated payloads (never thrown into the broker: a
 * listener that throws is logged):
 *
 * - `device:connect (deviceId)`: a session started (after CONNACK), including one that took over an earlier connection.
 * - `device:disconnect (deviceId)`: the device's last connection ended; a takeover is not a disconnect.
 * - `device:subscribed (deviceId)`: the device's `kx/{id}/cmd` subscription is in place: a new
 *   SUBSCRIBE, or one restored with a persistent session (then just before `device:connect`).
 *   Commands published before it on a clean session are lost, so send pending ones on this event.
 * - `device:event (deviceId, event)`: a valid message on `kx/{id}/events`, before it is stored (its PUBACK waits for `storeEvent`).
 * - `device:telemetry (deviceId, telemetry)`: a valid message on `kx/{id}/telemetry`.
 * - `device:status (deviceId, message)`: a valid message on `kx/{id}/status` (also the will).
 */
export interface BrokerEvents {
  'device:connect': [deviceId: string];
  'device:disconnect': [deviceId: string];
  'device:subscribed': [deviceId: string];
  'device:event': [deviceId: string, event: ExecutionEvent];
  'device:telemetry': [deviceId: string, telemetry: Telemetry];
  'device:status': [deviceId: string, message: DeviceStatusMessage];
}

/** The embedded MQTT broker of a Kernex server. */
export interface KernexBroker {
  /** Subscribes to a {@link BrokerEvents} event. */
  on<K extends keyof BrokerEvents>(event: K, listener: (...args: BrokerEvents[K]) => void): this;
  once<K extends keyof BrokerEvents>(event: K, listener: (...args: BrokerEvents[K]) => void): this;
  off<K extends keyof BrokerEvents>(event: K, listener: (...args: BrokerEvents[K]) => void): this;
  readonly aedes: Aedes;
  readonly metrics: BrokerMetrics;
  /** Bound listeners, in the order they were opened. */
  readonly listeners: readonly BoundListener[];
  /** Starts the listeners; rejects with the first listen error. */
  listen(options: ListenOptions): Promise<void>;
  /** True while every listener accepts connections. */
  isListening(): boolean;
  /** True while the device has a live session. */
  isOnline(deviceId: string): boolean;
  /**
   * True while the device has any authenticated connection here that has not
   * closed, CONNACKed or not yet: during a takeover on this broker, the newer
   * one while Aedes still ends the older.
   */
  hasConnection(deviceId: string): boolean;
  /** Devices with a live session on this broker, and how many. */
  connectedDevices(): string[];
  readonly connectedCount: number;
  /**
   * Publishes a command on `kx/{id}/cmd` with QoS 1 (DESIGN §3). The server's
   * own publishes bypass the device ACL. Resolves once Aedes has handed it to
   * the subscribers' queues (a persistent session keeps it while the device
   * is offline); it does not wait for the device's PUBACK. Rejects with a
   * TypeError a command that fails the shared schema: that is a bug of the caller.
   */
  publishCommand(deviceId: string, command: Command): Promise<void>;
  /**
   * {@link publishCommand} for a command already checked and serialised
   * ({@link EncodedCommand}, as the orchestrator makes them, a batch at a time).
   */
  publishEncoded(deviceId: string, command: EncodedCommand): Promise<void>;
  /**
   * Ends every connection of the device now and forgets its cached
   * credentials, so its next CONNECT is checked against the directory
   * (reject, decommission). Resolves when the connections are closed.
   */
  disconnectDevice(deviceId: string): Promise<void>;
  /** Stops accepting, disconnects every client and closes the broker. */
  close(): Promise<void>;
}

class Broker implements KernexBroker {
  readonly listeners: BoundListener[] = [];
  // Composed, not inherited: EventEmitter has a `listeners` method of its own.
  private readonly events = new EventEmitter<BrokerEvents>();

  constructor(
    readonly aedes: Aedes,
    readonly metrics: BrokerMetrics,
    private readonly log: Logger,
    private readonly edge: ConnectionEdge,
    readonly sessions = new Sessions(),
    readonly cache = new CredentialCache(),
    /** On a single node a command goes straight to its device's connection when it can; in a cluster it must cross the bus. */
    private readonly direct = true,
  ) {}

  on<K extends keyof BrokerEvents>(event: K, listener: (...args: BrokerEvents[K]) => void): this {
    (this.events.on as (e: K, l: typeof listener) => void)(event, listener);
    return this;
  }

  once<K extends keyof BrokerEvents>(event: K, listener: (...args: BrokerEvents[K]) => void): this {
    (this.events.once as (e: K, l: typeof listener) => void)(event, listener);
    return this;
  }

  off<K extends keyof BrokerEvents>(event: K, listener: (...args: BrokerEvents[K]) => void): this {
    (this.events.off as (e: K, l: typeof listener) => void)(event, listener);
    return this;
  }

  /** Emits without letting a listener's exception reach Aedes. */
  safeEmit<K extends keyof BrokerEvents>(name: K, ...args: BrokerEvents[K]): void {
    try {
      (this.events.emit as (n: K, ...a: BrokerEvents[K]) => boolean)(name, ...args);
    } catch (err) {
      this.log.error({ err, event: name }, 'broker event listener failed');
    }
  }

  async listen(options: ListenOptions): Promise<void> {
    const { host } = options;
    for (const { kind, server, port: wanted } of createListeners((conn, address, req) => this.edge.handle(conn, address, req), { ...options, wsMaxPayload: PRE_AUTH_BYTES })) {
      const port = await listen(server, wanted, host).catch((err: Error) => {
        throw Object.assign(err, { listener: kind }); // so the server can name the variable
      });
      this.listeners.push({ kind, server, port });
      this.log.info({ kind, port, host }, `${kind} listening`);
    }
  }

  isListening(): boolean {
    return this.listeners.length > 0 && this.listeners.every((l) => l.server.listening);
  }

  isOnline(deviceId: string): boolean {
    return this.sessions.isOnline(deviceId);
  }

  hasConnection(deviceId: string): boolean {
    return this.sessions.clients(deviceId).length > 0;
  }

  connectedDevices(): string[] {
    return this.sessions.onlineIds();
  }

  get connectedCount(): number {
    return this.sessions.onlineCount;
  }

  publishCommand(deviceId: string, command: Command): Promise<void> {
    let encoded: EncodedCommand;
    try {
      encoded = EncodedCommand.of(command);
    } catch (err) {
      return Promise.reject(err as TypeError);
    }
    return this.publishEncoded(deviceId, encoded);
  }

  publishEncoded(deviceId: string, command: EncodedCommand): Promise<void> {
    const topic = cmdTopic(deviceId);
    const packet = { cmd: 'publish', topic, payload: command.payload, qos: 1, retain: false, dup: false } as const;
    const client = this.direct ? subscribedClient(this.aedes, deviceId, topic) : undefined;
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => (err ? reject(err) : resolve());
      // Both resolve once the packet is written to the device's socket (or queued for its offline session).
      if (client) client.publish(packet, done);
      else this.aedes.publish(packet, done);
    });
  }

  async disconnectDevice(deviceId: string): Promise<void> {
    this.cache.forget(deviceId);
    const clients = this.sessions.clients(deviceId);
    if (clients.length) this.log.info({ deviceId, connections: clients.length }, 'disconnecting device');
    await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.close(() => resolve()))));
  }

  async close(): Promise<void> {
    // Stop accepting first, then drop the clients still connected.
    const closing = this.listeners.map((l) => closeServer(l.server));
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await Promise.all(closing);
  }
}

/** Builds the Aedes broker with Kernex's hooks and metrics. */
export async function createBroker(options: BrokerOptions): Promise<KernexBroker> {
  const log = options.log.child({ mod: 'broker' });
  const metrics = createBrokerMetrics(options.registry);
  const { directory } = options;
  const refusals = new RefusalLog(metrics, log);
  const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const limits: EdgeLimits = {
    preAuthBytes: PRE_AUTH_BYTES,
    // Without a directory there are no payload limits either (broker benchmarks).
    maxPacketBytes: directory ? MAX_DEVICE_PACKET_BYTES : Number.MAX_SAFE_INTEGER,
    maxPayloadBytes: MAX_DEVICE_PAYLOAD_BYTES,
    maxUnauthenticatedPerAddress: options.maxUnauthenticatedPerAddress ?? MAX_UNAUTHENTICATED_PER_ADDRESS,
    connectTimeoutMs,
  };
  // The edge closes (and counts) a connection without CONNACK in time; Aedes' own CONNECT timer is only a backstop.
  const connectTimeout = connectTimeoutMs + 1000;
  let broker!: Broker;

  if (!directory) {
    log.info('broker runs without authentication (no device directory)');
    const aedes = await Aedes.createBroker({ connectTimeout });
    broker = new Broker(aedes, metrics, log, new ConnectionEdge(aedes, limits, metrics, refusals));
    aedes.on('client', () => metrics.devicesConnected.inc());
    aedes.on('clientDisconnect', () => metrics.devicesConnected.dec());
    return broker;
  }

  const sessions = new Sessions();
  const cache = new CredentialCache();
  const gone = (deviceId: string, client: Client): void => {
    if (!sessions.remove(deviceId, client)) return;
    metrics.devicesConnected.set(sessions.onlineCount);
    log.debug({ deviceId }, 'device offline');
    directory.deviceDisconnected(deviceId, new Date());
    broker.safeEmit('device:disconnect', deviceId);
  };

  const authenticate = createAuthenticate({
    directory,
    cache,
    refusals,
    log,
    now: options.now ?? Date.now,
    onAuthenticated: (deviceId, client) => sessions.add(deviceId, client, () => gone(deviceId, client)),
  });
  const authorizers = createAuthorizers({
    metrics,
    refusals,
    log,
    takenOver: (deviceId, client) => sessions.hasOther(deviceId, client),
    onMessage: (deviceId: string, channel: DeviceChannel, payload: unknown, client: Client) => {
      if (channel === 'events') {
        broker.safeEmit('device:event', deviceId, payload as ExecutionEvent);
        // The PUBACK waits for the commit.
        return options.storeEvent?.(deviceId, payload as ExecutionEvent, client).then(() => {});
      }
      if (channel === 'telemetry') broker.safeEmit('device:telemetry', deviceId, payload as Telemetry);
      else if (channel === 'status') broker.safeEmit('device:status', deviceId, payload as DeviceStatusMessage);
      return undefined;
    },
  });

  const cluster = options.bus ? createClusterEmitter(options.bus) : undefined;
  const aedes = await Aedes.createBroker({ authenticate, ...authorizers, connectTimeout, ...(cluster ? { mq: cluster.mq } : {}) });
  cluster?.attach(aedes);
  broker = new Broker(aedes, metrics, log, new ConnectionEdge(aedes, limits, metrics, refusals), sessions, cache, !cluster);

  aedes.on('clientReady', (client) => {
    if (!sessions.ready(client.id, client)) return;
    metrics.devicesConnected.set(sessions.onlineCount);
    log.debug({ deviceId: client.id }, 'device online');
    directory.deviceConnected(client.id, new Date());
    broker.safeEmit('device:connect', client.id);
  });
  aedes.on('clientDisconnect', (client) => gone(client.id, client));
  aedes.on('subscribe', (subs, client) => {
    // Refused ones are reported too, with qos 128.
    if (client && subs.some((s) => s.topic === cmdTopic(client.id) && (s.qos as number) !== 128)) broker.safeEmit('device:subscribed', client.id);
  });
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'connection error'));
  return broker;
}
