import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { DevicesStore, PresenceChange } from '../store/devices.pg.js';
import type { WriterMetrics } from '../metrics.js';
import { WriteInterrupted, writeIsolating, type WriterState } from '../services/batch-writer.js';

export interface PresenceWriterOptions {
  /** Longest a change waits before it is written (default 1 s). */
  intervalMs?: number;
  /** Write at once when this many devices changed (default 500). */
  maxBatch?: number;
  /**
   * The time written for a change made at `at` (this process's clock). In a
   * cluster the database's clock, so that nodes' writes compare (DESIGN §8).
   */
  clock?: (at: Date) => Date;
}

/** What this needs of the devices store (store/devices.pg.ts implements it). */
export type PresenceRepository = Pick<DevicesStore, 'writePresence'>;

/** How long a presence change may wait for its batch by default, ms (every node's writer). */
export const PRESENCE_INTERVAL_MS = 1000;

/**
 * Writes `online`/`last_seen_at` from the broker's connect and disconnect
 * events in batches: one multi-row UPDATE per second (or per `maxBatch`
 * devices), the last change of each device winning, instead of one write per
 * event. A write that fails because the database is away keeps the changes
 * for the next attempt; a change PostgreSQL refuses (a value it cannot store)
 * is set apart by splitting the batch, dropped and counted.
 * Emits `flushed` (count) after each successful write, for tests and metrics.
 */
export class PresenceWriter extends EventEmitter<{ flushed: [count: number] }> {
  private pending = new Map<string, PresenceChange>();
  /** The batch being written: still waiting until it is committed. */
  private inFlight: PresenceChange[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private readonly intervalMs: number;
  private readonly maxBatch: number;
  private failing = false;
  private readonly clock: ((at: Date) => Date) | undefined;

  constructor(
    private readonly store: PresenceRepository,
    private readonly log: Logger,
    options: PresenceWriterOptions = {},
    private readonly writerMetrics?: WriterMetrics,
  ) {
    super();
    this.intervalMs = options.intervalMs ?? PRESENCE_INTERVAL_MS;
    this.maxBatch = options.maxBatch ?? 500;
    this.clock = options.clock;
    writerMetrics?.watch('presence', () => this.state());
  }

  /** Backlog, age of the oldest change, whether the database is away (`/readyz`, metrics). */
  state(): WriterState {
    let oldestAt: number | undefined;
    for (const c of [...this.inFlight, ...this.pending.values()]) oldestAt = Math.min(oldestAt ?? Infinity, c.at.getTime());
    return { backlog: this.inFlight.length + this.pending.size, oldestAt, failing: this.failing };
  }

  record(deviceId: string, online: boolean, at: Date): void {
    this.pending.set(deviceId, { deviceId, online, at });
    if (this.pending.size >= this.maxBatch) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.intervalMs);
  }

  /**
   * After a lapsed lease: the device's session here is still live, write it
   * online again, unless a change of it is waiting to be written already
   * (a connect made meanwhile must be written as one). See PresenceChange.reassert.
   */
  reassert(deviceId: string, at: Date): void {
    if (this.pending.has(deviceId)) return;
    this.record(deviceId, true, at);
    this.pending.get(deviceId)!.reassert = true;
  }

  /** Writes what is pending now; resolves when written (or failed and kept). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.writing = this.writing.then(() => this.writeBatch());
    return this.writing;
  }

  /** Final write at shutdown. */
  close(): Promise<void> {
    return this.flush();
  }

  private async writeBatch(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    let written = 0;
    this.inFlight = batch;
    try {
      await writeIsolating(
        batch,
        async (part) => {
          const clock = this.clock;
          await this.store.writePresence(clock ? part.map((c) => ({ ...c, at: clock(c.at) })) : part);
          written += part.length;
        },
        (change, err) => {
          this.writerMetrics?.refused.labels('presence').inc();
          this.log.warn({ deviceId: change.deviceId, err: (err as Error).message }, 'presence change refused by the database; dropped');
        },
      );
      if (this.failing) this.log.info({ count: written }, 'presence writes resumed');
      this.failing = false;
      this.log.debug({ count: written }, 'presence written');
      this.emit('flushed', written);
    } catch (err) {
      const unwritten = err instanceof WriteInterrupted ? (err.unwritten as PresenceChange[]) : batch;
      const cause = err instanceof WriteInterrupted ? err.cause : err;
      if (!this.failing) this.log.warn({ err: (cause as Error).message, count: unwritten.length }, 'presence write failed; will retry');
      this.failing = true;
      // Keep them unless a newer change of the same device came in meanwhile.
      for (const c of unwritten) if (!this.pending.has(c.deviceId)) this.pending.set(c.deviceId, c);
      this.timer ??= setTimeout(() => void this.flush(), this.intervalMs);
    } finally {
      this.inFlight = [];
    }
  }
}
