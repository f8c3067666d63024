import { EventEmitter } from 'node:events';
import { isDeviceId } from '@kernex/shared';
import type { BrokerBus, CrossingPacket } from '@kernex/broker';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Counter, Gauge, Registry } from 'prom-client';
import { createClusterBusMetrics } from '../metrics.js';
import { StartupError } from '../errors.js';
import { DeviceOwners } from './device-owners.js';

/** The pub/sub channel every node hears: two subscriptions per node, never one per device (aedes#569). */
const CHANNEL = 'kernex:bus';
/**
 * Live events for `GET /api/v1/events` (DESIGN §6): subscribed only by nodes
 * serving an event stream now, so a node without one is not sent every
 * presence and execution change of the fleet (each would cost it a parse).
 */
const LIVE_CHANNEL = 'kernex:bus:live';
/** A node's own channel: commands for the devices whose sessions it holds. */
const nodeChannel = (nodeId: string): string => `kernex:bus:node:${nodeId}`;
/** The device of a command topic `kx/{id}/cmd` (crossesNodes checked its form). */
const commandDevice = (topic: string): string | undefined => (topic.startsWith('kx/') ? topic.split('/')[1] : undefined);
/** The device of Aedes' `$SYS/{broker}/{new|disconnect}/clients` (its payload is the clientId). */
const sysDevice = (p: CrossingPacket, event: 'new' | 'disconnect'): string | undefined =>
  p.topic.startsWith('$SYS/') && p.topic.endsWith(`/${event}/clients`) ? Buffer.from(p.payload, 'base64').toString('utf8') : undefined;
/** The device announced by Aedes' `$SYS/{broker}/new/clients`: a new connection. */
const announcedDevice = (p: CrossingPacket): string | undefined => sysDevice(p, 'new');
/** The device announced by Aedes' `$SYS/{broker}/disconnect/clients`: a connection ended. */
const departedDevice = (p: CrossingPacket): string | undefined => sysDevice(p, 'disconnect');
/** Device ids per `held` message: 1,000 ids are about 27 KB of JSON. */
export const HELD_CHUNK = 1000;
/** Longest a start waits for Redis before it refuses. */
const CONNECT_TIMEOUT_MS = 5000;

/** What crosses between nodes besides broker packets. */
export type BusMessage =
  /** `forwarded`: sent on by a node that got a command for a device it no longer holds; never forwarded again. */
  | { kind: 'packet'; packet: CrossingPacket; forwarded?: true }
  /** End the device's sessions and forget its cached credentials (reject, decommission). */
  | { kind: 'disconnect'; deviceId: string }
  /** A live event for `GET /api/v1/events` (DESIGN §6), as the node that saw it serialised it. */
  | { kind: 'live'; event: unknown }
  /**
   * The sending node holds these devices' sessions (one chunk of them): sent when its Redis
   * returns, for the connections it made while its announcements could not cross.
   */
  | { kind: 'held'; deviceIds: string[] };

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
 *
 * A command goes to one node: the one {@link DeviceOwners} says holds the
 * device (this node too: it then comes back through Redis, in Redis' order),
 * or to every node when no owner is known or the owner's channel has no
 * listener. A node that gets a command for a device whose latest connection it
 * has not announced itself (a takeover elsewhere that it heard of first, in
 * Redis' order) sends it on to every node, once. A command that still misses
 * (published before the takeover reached Redis) was a row before it was sent,
 * and the device's subscription on its new node is healed from the database.
 */
export class RedisBus extends EventEmitter<RedisBusEvents> implements BrokerBus {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private started = false;
  private up = false;
  private closing = false;
  private packetListener: ((p: CrossingPacket) => void) | undefined;
  /** Whether this node's broker holds a connection of the device; unset: trust the announcements. */
  private holder: ((deviceId: string) => boolean) | undefined;
  /** Which node holds which device's session, as heard here. */
  readonly owners: DeviceOwners;
  private readonly ownChannel: string;
  private readonly sent: Counter<'kind'>;
  private readonly received: Counter<'kind'>;
  private readonly dropped: Counter<'reason'>;
  private readonly upGauge: Gauge;
  private readonly commandsSent: Counter<'route'>;
  private readonly commandsReceived: Counter<'route'>;
  /** Holders of {@link listenLive}: the live channel is subscribed while there is one. */
  private liveHolders = 0;
  private liveSubscribed: Promise<void> = Promise.resolve();

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
    this.owners = new DeviceOwners(nodeId);
    this.ownChannel = nodeChannel(nodeId);
    ({
      sent: this.sent,
      received: this.received,
      dropped: this.dropped,
      up: this.upGauge,
      commandsSent: this.commandsSent,
      commandsReceived: this.commandsReceived,
    } = createClusterBusMetrics(registry, () => this.owners.size));
  }

  /** Connects and subscribes; refuses the start with one line when Redis does not answer. */
  static async connect(url: string, nodeId: string, log: Logger, registry: Registry): Promise<RedisBus> {
    const bus = new RedisBus(url, nodeId, log, registry);
    // ioredis reports every failed attempt as 'error'; the state changes are what we log.
    bus.pub.on('error', () => {});
    bus.sub.on('error', () => {});
    try {
      await Promise.all([bus.pub.connect(), bus.sub.connect()]);
      await bus.sub.subscribe(CHANNEL, bus.ownChannel);
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
    bus.sub.on('message', (channel, text) => bus.onMessage(channel, text));
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
    const deviceId = commandDevice(packet.topic);
    if (deviceId === undefined) {
      // A new connection here: this node holds the device's session from now on; a connection ended.
      const announced = announcedDevice(packet);
      if (announced !== undefined) this.owners.connected(announced, this.nodeId);
      const departed = departedDevice(packet);
      if (departed !== undefined) {
        // A takeover on this broker: Aedes ends the older connection before it announces the newer
        // one, or after it when the older one was already closing (moscajs/aedes#153). Either way the
        // device is still here: its entry stays, here and on every node, and nothing crosses.
        if (this.holder?.(departed)) return;
        this.owners.disconnected(departed, this.nodeId);
      }
      this.publish({ kind: 'packet', packet });
      return;
    }
    const owner = this.owners.ownerOf(deviceId);
    if (owner === undefined) return this.broadcastCommand({ kind: 'packet', packet }, 'broadcast');
    this.publishTo(nodeChannel(owner), { kind: 'packet', packet }).then(
      (listeners) => {
        // Nobody on the owner's channel (it died, or restarted and has not subscribed yet): every node,
        // and the entry goes (a dead node's devices that never come back would keep theirs for good).
        if (listeners === 0) {
          this.owners.disconnected(deviceId, owner);
          this.broadcastCommand({ kind: 'packet', packet }, 'broadcast');
        } else this.commandsSent.labels('owner').inc();
      },
      () => {},
    );
  }

  /**
   * Tells the bus how to ask this node's broker whether it holds a device's
   * connection. A node whose Redis blipped missed the announcements made
   * meanwhile, so a device that moved here from elsewhere may still be this
   * node's in others' maps, or another's in this one: a command for a device
   * it does not hold is sent on to every node, whatever the announcements said.
   */
  holdsWith(holder: (deviceId: string) => boolean): void {
    this.holder = holder;
  }

  /**
   * Tells every node that this node holds these devices' sessions, in chunks of
   * {@link HELD_CHUNK}, after its Redis returns: the announcements of the
   * connections it made meanwhile never crossed, and the others' maps still name
   * the node each device was on before (DESIGN §8). The caller passes only what
   * its broker holds and PostgreSQL records as this node's latest session; a
   * device another node has announced since this node's map was reset (a takeover
   * heard here) is left out. Returns how many were announced.
   *
   * Order: Redis delivers one publisher's messages in the order they were sent,
   * so a disconnect or takeover this node announces after this list reaches every
   * node after it and wins; an announcement of another node heard after it wins
   * too. One made by another node in the moment between this node's look-up and
   * its publish may be overridden by this list: then this node, hearing it, closes
   * its connection and announces the disconnect (which drops the entry again), and
   * a command sent here meanwhile is sent on to every node (the map is a hint). A
   * takeover announced while this node's Redis was away is never heard here: the
   * caller waits out the other nodes' presence batches before its look-up, so such
   * a device is recorded elsewhere by then and left out.
   */
  announceHeld(deviceIds: Iterable<string>): number {
    const held = [...deviceIds].filter((id) => this.owners.isMine(id) && (this.holder?.(id) ?? true));
    for (let i = 0; i < held.length; i += HELD_CHUNK) this.publish({ kind: 'held', deviceIds: held.slice(i, i + HELD_CHUNK) });
    return held.length;
  }

  onPacket(listener: (packet: CrossingPacket) => void): void {
    this.packetListener = listener;
  }

  /** Hands a message to every other node (a live event: to those serving an event stream); dropped and counted while Redis is away. */
  publish(msg: BusMessage): void {
    this.publishTo(msg.kind === 'live' ? LIVE_CHANNEL : CHANNEL, msg).catch(() => {});
  }

  /**
   * Hears the other nodes' live events until `release` (counted: the channel is
   * subscribed while anyone holds it). `ready()` resolves once Redis has the
   * subscription, or could not take it: then it is taken again when Redis is
   * back, and `ready()` then resolves once it has.
   */
  listenLive(): { ready(): Promise<void>; release(): void } {
    if (this.liveHolders++ === 0) this.liveSubscribed = this.subscribeLive();
    let released = false;
    return {
      ready: () => this.liveSubscribed,
      release: () => {
        if (released) return;
        released = true;
        if (--this.liveHolders === 0) this.sub.unsubscribe(LIVE_CHANNEL).catch(() => {});
      },
    };
  }

  private subscribeLive(): Promise<void> {
    return this.sub.subscribe(LIVE_CHANNEL).then(
      () => undefined,
      (err: Error) => this.log.warn({ err: err.message }, 'live events of other nodes not subscribed; retried when redis is back'),
    );
  }

  /** Publishes on `channel`; resolves with how many subscribers got it, rejects when it was dropped (counted). */
  private publishTo(channel: string, msg: BusMessage): Promise<number> {
    if (!this.up) {
      this.dropped.labels('redis_down').inc();
      return Promise.reject(new Error('redis down'));
    }
    const envelope: Envelope = { from: this.nodeId, msg };
    return this.pub.publish(channel, JSON.stringify(envelope)).then(
      (listeners) => {
        this.sent.labels(msg.kind).inc();
        return listeners;
      },
      (err: Error) => {
        this.dropped.labels('publish_failed').inc();
        this.log.debug({ err: err.message, kind: msg.kind }, 'bus message not sent');
        throw err;
      },
    );
  }

  private broadcastCommand(msg: BusMessage, route: 'broadcast' | 'forwarded'): void {
    this.publishTo(CHANNEL, msg).then(
      () => this.commandsSent.labels(route).inc(),
      () => {},
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
      // ioredis resubscribes only what Redis had accepted; a stream opened during the outage had not.
      if (this.liveHolders > 0) this.liveSubscribed = this.subscribeLive();
      // ...and resubscribes what Redis had accepted, also when the last stream closed meanwhile (its
      // unsubscribe could not reach Redis): then the live channel goes again.
      else this.sub.unsubscribe(LIVE_CHANNEL).catch(() => {});
      this.log.info({ redis: describe(this.url) }, 'redis connection back; healing from the database');
      this.emit('recovered');
    } else {
      this.log.warn({ redis: describe(this.url) }, 'redis connection lost; serving this node only until it returns');
    }
  }

  private onMessage(channel: string, text: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch {
      this.dropped.labels('malformed').inc();
      return;
    }
    if (!envelope.msg) return;
    const { msg, from } = envelope;
    try {
      if (channel === this.ownChannel && msg.kind === 'packet') this.onOwnedCommand(msg.packet, from);
      else if (from !== this.nodeId) this.onBroadcast(msg, from);
    } catch (err) {
      this.log.error({ err, kind: msg.kind }, 'bus message handler failed');
    }
  }

  private onBroadcast(msg: BusMessage, from: string): void {
    this.received.labels(msg.kind).inc();
    if (msg.kind === 'held') {
      // Like a new connection announced by `from`, for each; heard in Redis' order (see announceHeld).
      // At most one chunk's worth, device ids only: the map must not grow from a malformed message.
      if (!Array.isArray(msg.deviceIds) || msg.deviceIds.length > HELD_CHUNK) return void this.dropped.labels('malformed').inc();
      for (const id of msg.deviceIds) if (typeof id === 'string' && isDeviceId(id)) this.owners.connected(id, from);
      return;
    }
    if (msg.kind !== 'packet') {
      this.emit('message', msg);
      return;
    }
    // Heard in Redis' order: any command published after this announcement finds the new owner.
    const announced = announcedDevice(msg.packet);
    if (announced !== undefined) this.owners.connected(announced, from);
    else {
      const departed = departedDevice(msg.packet);
      // Only the map needs it: nothing on this node's broker listens for another broker's disconnects.
      if (departed !== undefined) return this.owners.disconnected(departed, from);
      this.commandsReceived.labels(msg.forwarded ? 'forwarded' : 'broadcast').inc();
    }
    this.packetListener?.(msg.packet);
  }

  /**
   * A command sent to this node as the device's owner. When this node sent it
   * itself it was delivered here already; either way, if the device's latest
   * connection heard of (in Redis' order, so a takeover announced before this
   * command) is not this node's, every node gets it, once.
   */
  private onOwnedCommand(packet: CrossingPacket, from: string): void {
    const deviceId = commandDevice(packet.topic);
    if (from !== this.nodeId) {
      this.received.labels('packet').inc();
      this.commandsReceived.labels('owner').inc();
      this.packetListener?.(packet);
    }
    if (deviceId === undefined) return;
    const holds = this.owners.isMine(deviceId) && (this.holder?.(deviceId) ?? true);
    if (!holds) this.broadcastCommand({ kind: 'packet', packet, forwarded: true }, 'forwarded');
  }
}
