import { Counter, Gauge, type Registry } from 'prom-client';
import { WriteInterrupted } from '../errors.js';
import { isRowRefusal } from '../store/database.js';

export { WriteInterrupted };

/**
 * Writes `items` with `write`, one batch at a time; when PostgreSQL refuses a
 * row (see {@link isRowRefusal}), splits the batch in halves until the
 * refused rows are alone, hands each to `onRefused` and writes the rest. One
 * bad row in a batch of n costs about 2·log2(n) extra statements. Any other
 * error (the database is away) stops at once with {@link WriteInterrupted},
 * which lists what is left, in order.
 */
export async function writeIsolating<T>(items: readonly T[], write: (part: T[]) => Promise<void>, onRefused: (item: T, err: unknown) => void): Promise<void> {
  const todo: T[][] = items.length ? [[...items]] : [];
  while (todo.length > 0) {
    const part = todo.shift()!;
    try {
      await write(part);
    } catch (err) {
      if (!isRowRefusal(err)) throw new WriteInterrupted([part, ...todo].flat(), err);
      if (part.length === 1) onRefused(part[0]!, err);
      else {
        const mid = Math.ceil(part.length / 2);
        todo.unshift(part.slice(0, mid), part.slice(mid));
      }
    }
  }
}

/** Writers that report their health: `telemetry`, `presence`, `events`. */
export type WriterName = 'telemetry' | 'presence' | 'events';

/** A writer's view of itself, for `/readyz` and `/metrics`. */
export interface WriterState {
  /** Items waiting to be written. */
  backlog: number;
  /** When the oldest waiting item arrived (ms since the epoch), if any. */
  oldestAt: number | undefined;
  /** The last write attempt failed for another reason than a row (the database is away). */
  failing: boolean;
}

/**
 * A writer is stalled when it has work and cannot make progress: its last
 * attempt failed, or its oldest item waits longer than `stallAfterMs`.
 */
export function isStalled(s: WriterState, stallAfterMs: number, now = Date.now()): boolean {
  if (s.backlog === 0) return false;
  return s.failing || (s.oldestAt !== undefined && now - s.oldestAt > stallAfterMs);
}

/** Default for {@link isStalled}: an item older than this means the writer is stuck. */
export const STALL_AFTER_MS = 30_000;

/** The writers' shared metrics: backlog, stalled, refused rows. */
export interface WriterMetrics {
  refused: Counter<'writer'>;
  /** Registers a writer; its gauges are read at each scrape. */
  watch(name: WriterName, state: () => WriterState): void;
  /** Per writer: true while it keeps up, false while it is stalled (`/readyz`). */
  healthy(): Record<WriterName, boolean>;
}

export function createWriterMetrics(registry: Registry, stallAfterMs = STALL_AFTER_MS): WriterMetrics {
  const writers = new Map<WriterName, () => WriterState>();
  const refused = new Counter({
    name: 'kernex_writer_rows_refused_total',
    help: 'Rows PostgreSQL refused (e.g. NUL or a lone surrogate in a string), set apart from their batch and dropped, by writer',
    labelNames: ['writer'],
    registers: [registry],
  });
  new Gauge({
    name: 'kernex_writer_backlog',
    help: 'Items waiting to be written to the database, by writer',
    labelNames: ['writer'],
    registers: [registry],
    collect() {
      for (const [name, state] of writers) this.labels(name).set(state().backlog);
    },
  });
  new Gauge({
    name: 'kernex_writer_oldest_pending_seconds',
    help: 'Age of the oldest item waiting to be written, by writer (0 when none waits)',
    labelNames: ['writer'],
    registers: [registry],
    collect() {
      const now = Date.now();
      for (const [name, state] of writers) {
        const at = state().oldestAt;
        this.labels(name).set(at === undefined ? 0 : (now - at) / 1000);
      }
    },
  });
  new Gauge({
    name: 'kernex_writer_stalled',
    help: '1 while a writer has work and cannot make progress (database away, or its oldest item too old), by writer',
    labelNames: ['writer'],
    registers: [registry],
    collect() {
      for (const [name, state] of writers) this.labels(name).set(isStalled(state(), stallAfterMs) ? 1 : 0);
    },
  });
  return {
    refused,
    watch: (name, state) => {
      writers.set(name, state);
      refused.labels(name).inc(0);
    },
    healthy: () => {
      const out = {} as Record<WriterName, boolean>;
      for (const [name, state] of writers) out[name] = !isStalled(state(), stallAfterMs);
      return out;
    },
  };
}
