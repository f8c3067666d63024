import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FromWorker, StartMessage, SwarmClientSpec, ToWorker } from './swarm-messages.js';
import { sliceSwarm } from './split.js';

export type { SwarmClientSpec } from './swarm-messages.js';

export interface SwarmOptions {
  url: string;
  clients: SwarmClientSpec[];
  /** Workers to spread the clients over. */
  workers: number;
  /**
   * `threads` (default): worker threads of this process. `processes`: a child
   * process each (node's fork, IPC), so the clients are not one process's
   * threads and their CPU is measured apart from the bench's own.
   */
  mode?: 'threads' | 'processes';
  /** Total CONNECTs per second over all workers; 0 = as fast as possible. */
  connectRate?: number;
  keepalive?: number;
  clean?: boolean;
  /** Start no client until go() is called (after `ready`): a storm then does not race its workers' start-up. */
  hold?: boolean;
}

/** A received message, with the absolute time it arrived in its worker. */
export interface Receipt {
  clientIndex: number;
  topic: string;
  at: number;
  bytes: number;
  /** The command's type, `deploy:<bundle id>` for a deploy (see swarm-worker.ts). */
  tag?: string;
}

/** A worker thread or a child process running swarm-worker.js. */
interface WorkerHandle {
  pid: number;
  post(m: ToWorker): void;
  onMessage(fn: (m: FromWorker) => void): void;
  onError(fn: (err: Error) => void): void;
  /** Resolves when the thread or process has ended, for whatever reason. */
  exited: Promise<void>;
  /** Ends it after its clients closed: terminate() for a thread, SIGTERM to its PID for a process (SIGKILL after 10 s). */
  end(): Promise<void>;
}

const WORKER_FILE = new URL('./swarm-worker.js', import.meta.url);

function threadWorker(): WorkerHandle {
  const w = new Worker(WORKER_FILE);
  const exited = once(w, 'exit').then(() => {});
  return {
    exited,
    pid: process.pid,
    post: (m) => w.postMessage(m),
    onMessage: (fn) => w.on('message', fn),
    onError: (fn) => w.on('error', fn),
    end: async () => void (await w.terminate()),
  };
}

function processWorker(): WorkerHandle {
  const child: ChildProcess = fork(fileURLToPath(WORKER_FILE), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = once(child, 'exit').then(() => {});
  return {
    exited,
    pid: child.pid!,
    post: (m) => {
      if (child.connected) child.send(m);
    },
    onMessage: (fn) => child.on('message', fn as (m: unknown) => void),
    onError: (fn) => child.on('error', fn),
    async end() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const hard = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(hard);
    },
  };
}

/**
 * Many MQTT.js clients spread over worker threads, for benchmarks: connect
 * them, await all CONNACKs (and SUBACKs), and collect message receipts with
 * their arrival times. Events: 'receipt' (Receipt), 'failed' (index, reason).
 */
export class Swarm extends EventEmitter {
  readonly connectTimes: Array<{ sentAt: number; ackAt: number }> = [];
  readonly failures: Array<{ index: number; reason: string }> = [];
  /** Failover clients: when each lost its session, and when it was subscribed again. */
  readonly lostTimes: Array<{ index: number; at: number }> = [];
  readonly reconnectTimes: Array<{ index: number; at: number; url: string }> = [];
  private connectedCount = 0;
  private subscribedCount = 0;
  private readonly workers: WorkerHandle[] = [];
  private readonly waiters: Array<() => void> = [];
  private readonly starts: Array<() => void> = [];
  private readyCount = 0;
  private markReady!: () => void;
  /** Resolves once every worker has loaded (its MQTT.js is in memory, no client started yet). */
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));

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

  /** The processes the clients run in (this one, in threads mode), for CPU accounting. */
  get pids(): number[] {
    return [...new Set(this.workers.map((w) => w.pid))];
  }

  private spawn(): void {
    const { clients, workers } = this.opts;
    const slices = sliceSwarm(clients.length, workers);
    for (const { offset, count } of slices) {
      const worker = this.opts.mode === 'processes' ? processWorker() : threadWorker();
      worker.onMessage((m) => this.onWorker(m, offset));
      worker.onError((err) => this.failures.push({ index: -1, reason: err.message }));
      this.starts.push(() => worker.post({
        type: 'start',
        url: this.opts.url,
        clients: clients.slice(offset, offset + count),
        rate: (this.opts.connectRate ?? 0) / slices.length,
        keepalive: this.opts.keepalive ?? 60,
        clean: this.opts.clean ?? true,
      } satisfies StartMessage));
      this.workers.push(worker);
    }
    if (slices.length === 0) this.markReady();
    if (!this.opts.hold) void this.ready.then(() => this.go());
  }

  /** Starts every worker's clients at once (with `hold`; otherwise done as soon as all are ready). */
  go(): void {
    for (const start of this.starts.splice(0)) start();
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
        for (const r of m.items) this.emit('receipt', { clientIndex: r.i + offset, topic: r.topic, at: r.at, bytes: r.bytes, tag: r.tag } satisfies Receipt);
        break;
      case 'lost':
        for (const l of m.items) this.lostTimes.push({ index: l.i + offset, at: l.at });
        break;
      case 'reconnected':
        for (const r of m.items) this.reconnectTimes.push({ index: r.i + offset, at: r.at, url: r.url });
        break;
      case 'failed':
        this.failures.push({ index: m.i + offset, reason: m.reason });
        this.emit('failed', m.i + offset, m.reason);
        break;
      case 'closed':
        break;
      case 'ready':
        if (++this.readyCount === this.workers.length) this.markReady();
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
            w.onMessage((m) => {
              if (m.type === 'closed') void w.end().then(() => resolve());
            });
            void w.exited.then(() => resolve());
            // Bounded: a worker that does not answer within 60 s is ended anyway.
            setTimeout(() => void w.end().then(() => resolve()), 60_000).unref();
            w.post({ type: 'close' });
          }),
      ),
    );
  }
}
