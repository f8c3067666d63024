import type { RedisBus } from './redis-bus.js';

/**
 * The live-event bus of a cluster node (DESIGN §6, §8: any node serves every
 * change, whichever node saw it): an event published here reaches this node's
 * subscribers at once and every other node's over Redis. It fits the console's
 * `LiveEventBus` (publish, subscribe, close) structurally, for any event type.
 * At most once across nodes, like the rest of the bus: a stream that must not
 * miss a change reads the state again after a gap (the console does on reconnect).
 */
export class RedisLiveEventBus<E> {
  private readonly listeners = new Set<(event: E) => void>();
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
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.bus.off('message', this.onMessage);
    this.listeners.clear();
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
