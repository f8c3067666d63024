import { EventEmitter } from 'node:events';
import type { BrokerBus, CrossingPacket } from '@kernex/broker';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Counter, Gauge, Registry } from 'prom-client';
import { createClusterBusMetrics } from '../metrics.js';
import { StartupError } from '../errors.js';

/** The one pub/sub channel of an installation: one subscription per node, never one per device (aedes#569). */
const CHANNEL = 'kernex:bus';
/** Longest a start waits for Redis before it refuses. */
const CONNECT_TIMEOUT_MS = 5000;

/** What crosses between nodes besides broker packets. */
export type BusMessage =
  | { kind: 'packet'; packet: CrossingPacket }
  /** End the device's sessions and forget its cached credentials (reject, decommission). */
  | { kind: 'disconnect'; deviceId: string }
  /** A live event for `GET /api/v1/events` (DESIGN §6), as the node that saw it serialised it. */
  | { kind: 'live'; event: unknown };

interface Envelope {
  from: string;
  msg: BusMessage;
}

/** Events of {@link RedisBus}. */
export interface RedisBusEvents {
  message: [msg: BusMessage];
  /** Redis answers again after a loss: whatever crossed meanwhile may be lost, heal from PostgreSQL. */
  recovered: [];
}

/** Where a Redis URL points, without its password. */
function describe(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 6379}`;
  } catch {
    return '(invalid url)';
  }
}

/**
 * The cluster's bus over Redis pub/sub (DESIGN §8), at most once: a message
 * sent while Redis is away is dropped and counted (no offline queue that grows
 * without bound), and `recovered` tells the server to heal from PostgreSQL.
 * Two connections, as Redis requires: one publishes, one subscribes.
 */
export class RedisBus extends EventEmitter<RedisBusEvents> implements BrokerBus {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private started = false;
  private up = false;
  private closing = false;
  private packetListener: ((p: CrossingPacket) => void) | undefined;
  private readonly sent: Counter<'kind'>;
  private readonly received: Counter<'kind'>;
  private readonly dropped: Counter<'reason'>;
  private readonly upGauge: Gauge;

  private constructor(
    private readonly url: string,
    private readonly nodeId: string,
    private readonly log: Logger,
    registry: Registry,
  ) {
    super();
    const options = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // At start a failure refuses the start; later, keep trying every ≤ 2 s until Redis is back.
      retryStrategy: (times: number) => (this.started && !this.closing ? Math.min(times * 250, 2000) : null),
    };
    this.pub = new Redis(url, { ...options, connectionName: `kernex:${nodeId}:pub` });
    this.sub = new Redis(url, { ...options, connectionName: `kernex:${nodeId}:sub` });
    ({ sent: this.sent, received: this.received, dropped: this.dropped, up: this.upGauge } = createClusterBusMetrics(registry));
  }

  /** Connects and subscribes; refuses the start with one line when Redis does not answer. */
  static async connect(url: string, nodeId: string, log: Logger, registry: Registry): Promise<RedisBus> {
    const bus = new RedisBus(url, nodeId, log, registry);
    // ioredis reports every failed attempt as 'error'; the state changes are what we log.
    bus.pub.on('error', () => {});
    bus.sub.on('error', () => {});
    try {
      await Promise.all([bus.pub.connect(), bus.sub.connect()]);
      await bus.sub.subscribe(CHANNEL);
    } catch (err) {
      bus.closing = true;
      bus.pub.disconnect();
      bus.sub.disconnect();
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new StartupError(`cannot reach Redis at ${describe(url)} (KERNEX_REDIS_URL): ${reason}`, { cause: err });
    }
    bus.started = true;
    bus.up = true;
    bus.upGauge.set(1);
    bus.sub.on('message', (_channel, text) => bus.onMessage(text));
    for (const conn of [bus.pub, bus.sub]) {
      conn.on('close', () => bus.setUp(false));
      // The subscriber resubscribes by itself (autoResubscribe) before it is 'ready' again.
      conn.on('ready', () => bus.setUp(bus.pub.status === 'ready' && bus.sub.status === 'ready'));
    }
    return bus;
  }

  /** The publishing connection, for other shared state (the rate limiter's counters). */
  get client(): Redis {
    return this.pub;
  }

  /** True while both connections are ready (readiness, DESIGN §8 faults). */
  isUp(): boolean {
    return this.up;
  }

  send(packet: CrossingPacket): void {
    this.publish({ kind: 'packet', packet });
  }

  onPacket(listener: (packet: CrossingPacket) => void): void {
    this.packetListener = listener;
  }

  /** Hands a message to every other node; dropped and counted while Redis is away. */
  publish(msg: BusMessage): void {
    if (!this.up) {
      this.dropped.labels('redis_down').inc();
      return;
    }
    const envelope: Envelope = { from: this.nodeId, msg };
    this.pub.publish(CHANNEL, JSON.stringify(envelope)).then(
      () => this.sent.labels(msg.kind).inc(),
      (err: Error) => {
        this.dropped.labels('publish_failed').inc();
        this.log.debug({ err: err.message, kind: msg.kind }, 'bus message not sent');
      },
    );
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([this.pub.quit().catch(() => this.pub.disconnect()), this.sub.quit().catch(() => this.sub.disconnect())]);
  }

  private setUp(up: boolean): void {
    if (this.closing || up === this.up) return;
    this.up = up;
    this.upGauge.set(up ? 1 : 0);
    if (up) {
      this.log.info({ redis: describe(this.url) }, 'redis connection back; healing from the database');
      this.emit('recovered');
    } else {
      this.log.warn({ redis: describe(this.url) }, 'redis connection lost; serving this node only until it returns');
    }
  }

  private onMessage(text: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch {
      this.dropped.labels('malformed').inc();
      return;
    }
    if (envelope.from === this.nodeId || !envelope.msg) return;
    const { msg } = envelope;
    this.received.labels(msg.kind).inc();
    try {
      if (msg.kind === 'packet') this.packetListener?.(msg.packet);
      else this.emit('message', msg);
    } catch (err) {
      this.log.error({ err, kind: msg.kind }, 'bus message handler failed');
    }
  }
}
