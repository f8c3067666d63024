import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisBus } from './redis-bus.js';

/** Longest {@link RedisLiveEventBus.listening} waits for Redis to take the subscription. */
const LISTEN_WAIT_MS = 2000;

/**
 * The live-event bus of a cluster node (DESIGN §6, §8: any node serves every
 * change, whichever node saw it): an event published here reaches this node's
 * subscribers at once and every other node's over Redis. It fits the console's
 * `LiveEventBus` (publish, subscribe, close) structurally, for any event type.
 * At most once across nodes, like the rest of the bus: a stream that must not
 * miss a change reads the state again after a gap (the console does on reconnect).
 * Other nodes' events are heard only while this node has a listener (an open
 * stream): a node serving none is not sent the fleet's every change.
 */
export class RedisLiveEventBus<E> {
  private readonly listeners = new Set<(event: E) => void>();
  /** Held while there are listeners: only then do other nodes' live events come here. */
  private live: ReturnType<RedisBus['listenLive']> | undefined;
  private readonly onMessage = (msg: { kind: string; event?: unknown }): void => {
    if (msg.kind === 'live') this.deliver(msg.event as E);
  };

  constructor(
    private readonly bus: RedisBus,
    private readonly onListenerError: (err: unknown) => void = () => {},
  ) {
    bus.on('message', this.onMessage);
  }

  publish(event: E): void {
    this.deliver(event);
    this.bus.publish({ kind: 'live', event });
  }

  subscribe(listener: (event: E) => void): () => void {
    this.listeners.add(listener);
    this.live ??= this.bus.listenLive();
    return () => {
      if (this.listeners.delete(listener) && this.listeners.size === 0) this.stopListening();
    };
  }

  /**
   * Resolves once the other nodes' events reach the listeners subscribed so far, or
   * could not yet (Redis is away: they do once it is back), or after LISTEN_WAIT_MS
   * at most (Redis answers nothing): a stream's `ready` never waits on Redis for long.
   */
  listening(): Promise<void> {
    const ready = this.live?.ready();
    if (!ready) return Promise.resolve();
    return Promise.race([ready, sleep(LISTEN_WAIT_MS, undefined, { ref: false })]);
  }

  async close(): Promise<void> {
    this.bus.off('message', this.onMessage);
    this.listeners.clear();
    this.stopListening();
  }

  private stopListening(): void {
    this.live?.release();
    this.live = undefined;
  }

  private deliver(event: E): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }
}
