import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { FromWorker, SwarmClientSpec } from './swarm-messages.js';

export type { SwarmClientSpec } from './swarm-messages.js';

export interface SwarmOptions {
  url: string;
  clients: SwarmClientSpec[];
  /** Worker threads to spread the clients over. */
  workers: number;
  /** Total CONNECTs per second over all workers; 0 = as fast as possible. */
  connectRate?: number;
  keepalive?: number;
  clean?: boolean;
}

/** A received message, with the absolute time it arrived in its worker. */
export interface Receipt {
  clientIndex: number;
  topic: string;
  at: number;
  bytes: number;
}

/**
 * Many MQTT.js clients spread over worker threads, for benchmarks: connect
 * them, await all CONNACKs (and SUBACKs), and collect message receipts with
 * their arrival times. Events: 'receipt' (Receipt), 'failed' (index, reason).
 */
export class Swarm extends EventEmitter {
  readonly connectTimes: Array<{ sentAt: number; ackAt: number }> = [];
  readonly failures: Array<{ index: number; reason: string }> = [];
  private connectedCount = 0;
  private subscribedCount = 0;
  private readonly workers: Worker[] = [];
  private readonly waiters: Array<() => void> = [];

  private constructor(private readonly opts: SwarmOptions) {
    super();
  }

  static start(opts: SwarmOptions): Swarm {
    const swarm = new Swarm(opts);
    swarm.spawn();
    return swarm;
  }

  get connected(): number {
    return this.connectedCount;
  }

  get subscribed(): number {
    return this.subscribedCount;
  }

  private spawn(): void {
    const { clients, workers } = this.opts;
    const share = Math.ceil(clients.length / workers);
    for (let w = 0; w < workers; w++) {
      const slice = clients.slice(w * share, (w + 1) * share);
      if (slice.length === 0) break;
      const offset = w * share;
      const worker = new Worker(new URL('./swarm-worker.js', import.meta.url));
      worker.on('message', (m: FromWorker) => this.onWorker(m, offset));
      worker.on('error', (err) => this.failures.push({ index: -1, reason: err.message }));
      worker.postMessage({
        type: 'start',
        url: this.opts.url,
        clients: slice,
        rate: (this.opts.connectRate ?? 0) / workers,
        keepalive: this.opts.keepalive ?? 60,
        clean: this.opts.clean ?? true,
      });
      this.workers.push(worker);
    }
  }

  private onWorker(m: FromWorker, offset: number): void {
    switch (m.type) {
      case 'connected':
        for (const c of m.items) this.connectTimes.push({ sentAt: c.sentAt, ackAt: c.ackAt });
        this.connectedCount += m.items.length;
        break;
      case 'subscribed':
        this.subscribedCount += m.items.length;
        break;
      case 'messages':
        for (const r of m.items) this.emit('receipt', { clientIndex: r.i + offset, topic: r.topic, at: r.at, bytes: r.bytes } satisfies Receipt);
        break;
      case 'failed':
        this.failures.push({ index: m.i + offset, reason: m.reason });
        this.emit('failed', m.i + offset, m.reason);
        break;
      case 'closed':
        break;
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `check()` holds, re-checking after each worker report; rejects after `timeoutMs`. */
  waitFor(check: (s: Swarm) => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`swarm: timed out waiting for ${what} (${this.connectedCount} connected, ${this.failures.length} failed)`)), timeoutMs);
      const test = (): void => {
        if (check(this)) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(test);
      };
      test();
    });
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.on('message', (m: FromWorker) => {
              if (m.type === 'closed') void w.terminate().then(() => resolve());
            });
            w.postMessage({ type: 'close' });
          }),
      ),
    );
  }
}
