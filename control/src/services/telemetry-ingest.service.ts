import type { Telemetry } from '@kernex/shared';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { TelemetrySample, TelemetryStore } from '../store/telemetry.pg.js';
import { WriteInterrupted, writeIsolating, type WriterMetrics, type WriterState } from './batch-writer.js';

/** Options of {@link TelemetryIngest}. */
export interface TelemetryIngestOptions {
  /** Flush at least this often (ms). */
  flushMs?: number;
  /** Flush as soon as this many samples wait; also the largest batch. */
  maxBatch?: number;
  /** Keep at most this many samples while the database is away; older ones are dropped and counted. */
  maxBuffered?: number;
}

/** Prometheus metrics of the ingest. */
export interface TelemetryMetrics {
  persisted: Counter;
  dropped: Counter<'reason'>;
  flushSeconds: Histogram;
}

export function createTelemetryMetrics(registry: Registry): TelemetryMetrics {
  return {
    persisted: new Counter({ name: 'kernex_telemetry_persisted_total', help: 'Telemetry samples written to the database', registers: [registry] }),
    dropped: new Counter({
      name: 'kernex_telemetry_dropped_total',
      help: 'Telemetry samples dropped by the server, by reason (backlog: the database was away too long; unknown_device; refused: PostgreSQL refused the sample)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    flushSeconds: new Histogram({
      name: 'kernex_telemetry_flush_seconds',
      help: 'Time to write one batch of telemetry',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
  };
}

/**
 * Batches telemetry from the broker into PostgreSQL: samples wait in memory
 * and are written together every `flushMs` or as soon as `maxBatch` wait
 * (never one round trip per message). One flush runs at a time. When the
 * database is away, what was not written goes back to the front of the queue
 * and is tried again at the next tick; the queue is bounded, the oldest
 * samples are dropped first (telemetry is QoS 0: the next sample replaces a
 * lost one). A sample PostgreSQL refuses (a string it cannot store) is set
 * apart by splitting the batch, dropped and counted, and never holds back
 * the others.
 */
export class TelemetryIngest {
  private queue: TelemetrySample[] = [];
  /** The batch being written: still waiting until it is committed. */
  private writing: TelemetrySample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private failing = false;
  private readonly flushMs: number;
  private readonly maxBatch: number;
  private readonly maxBuffered: number;

  constructor(
    private readonly store: TelemetryStore,
    private readonly log: Logger,
    private readonly metrics: TelemetryMetrics,
    options: TelemetryIngestOptions = {},
    private readonly writerMetrics?: WriterMetrics,
  ) {
    this.flushMs = options.flushMs ?? 1000;
    this.maxBatch = options.maxBatch ?? 2000;
    this.maxBuffered = options.maxBuffered ?? 100_000;
    writerMetrics?.watch('telemetry', () => this.state());
  }

  /** Backlog, age of the oldest sample, whether the database is away (`/readyz`, metrics). */
  state(): WriterState {
    return { backlog: this.writing.length + this.queue.length, oldestAt: (this.writing[0] ?? this.queue[0])?.at.getTime(), failing: this.failing };
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.flushMs);
    this.timer.unref();
  }

  /** Samples waiting to be written. */
  get backlog(): number {
    return this.queue.length;
  }

  /** Takes one validated sample (the broker refused invalid and oversized ones already). */
  add(deviceId: string, data: Telemetry, at = new Date()): void {
    this.queue.push({ deviceId, at, data });
    if (this.queue.length > this.maxBuffered) {
      const over = this.queue.length - this.maxBuffered;
      this.queue.splice(0, over);
      this.metrics.dropped.labels('backlog').inc(over);
    }
    if (this.queue.length >= this.maxBatch && !this.flushing) void this.flush();
  }

  /** Writes what waits, batch by batch; resolves when the queue is empty or a write failed. */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Stops the timer and writes what is left (best effort). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    await this.flushing;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      const end = this.metrics.flushSeconds.startTimer();
      let written = 0;
      let refused = 0;
      this.writing = batch;
      try {
        await writeIsolating(
          batch,
          async (part) => {
            const n = await this.store.insertBatch(part);
            written += n;
            if (n < part.length) this.metrics.dropped.labels('unknown_device').inc(part.length - n);
          },
          (sample, err) => {
            refused++;
            this.writerMetrics?.refused.labels('telemetry').inc();
            this.metrics.dropped.labels('refused').inc();
            this.log.warn({ deviceId: sample.deviceId, err: (err as Error).message }, 'telemetry sample refused by the database; dropped');
          },
        );
        end();
        this.metrics.persisted.inc(written);
        if (this.failing) this.log.info({ rows: written }, 'telemetry writes resumed');
        this.failing = false;
        this.log.debug({ rows: written, refused }, 'telemetry batch written');
      } catch (err) {
        this.metrics.persisted.inc(written);
        const unwritten = err instanceof WriteInterrupted ? (err.unwritten as TelemetrySample[]) : batch;
        this.queue.unshift(...unwritten);
        const cause = err instanceof WriteInterrupted ? err.cause : err;
        if (!this.failing) this.log.warn({ err: (cause as Error).message, backlog: this.queue.length }, 'telemetry batch not written; keeping it for the next flush');
        this.failing = true;
        return;
      } finally {
        this.writing = [];
      }
    }
  }
}
