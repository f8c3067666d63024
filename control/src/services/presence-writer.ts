import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { DevicesStore, PresenceChange } from '../store/devices.pg.js';

export interface PresenceWriterOptions {
  /** Longest a change waits before it is written (default 1 s). */
  intervalMs?: number;
  /** Write at once when this many devices changed (default 500). */
  maxBatch?: number;
}

/**
 * Writes `online`/`last_seen_at` from the broker's connect and disconnect
 * events in batches: one multi-row UPDATE per second (or per `maxBatch`
 * devices), the last change of each device winning, instead of one write per
 * event. A failed write keeps the changes for the next attempt.
 * Emits `flushed` (count) after each successful write, for tests and metrics.
 */
export class PresenceWriter extends EventEmitter<{ flushed: [count: number] }> {
  private pending = new Map<string, PresenceChange>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private readonly intervalMs: number;
  private readonly maxBatch: number;

  constructor(
    private readonly store: DevicesStore,
    private readonly log: Logger,
    options: PresenceWriterOptions = {},
  ) {
    super();
    this.intervalMs = options.intervalMs ?? 1000;
    this.maxBatch = options.maxBatch ?? 500;
  }

  record(deviceId: string, online: boolean, at: Date): void {
    this.pending.set(deviceId, { deviceId, online, at });
    if (this.pending.size >= this.maxBatch) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.intervalMs);
  }

  /** Changes waiting to be written (a gauge of /metrics). */
  get backlog(): number {
    return this.pending.size;
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
    try {
      await this.store.writePresence(batch);
      this.log.debug({ count: batch.length }, 'presence written');
      this.emit('flushed', batch.length);
    } catch (err) {
      this.log.warn({ err, count: batch.length }, 'presence write failed; will retry');
      // Keep them unless a newer change of the same device came in meanwhile.
      for (const c of batch) if (!this.pending.has(c.deviceId)) this.pending.set(c.deviceId, c);
      this.timer ??= setTimeout(() => void this.flush(), this.intervalMs);
    }
  }
}
