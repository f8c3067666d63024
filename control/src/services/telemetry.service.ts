import type { Telemetry } from '@kernex/shared';
import type { Logger } from 'pino';
import { Errors } from '../errors.js';
import { decodeCursor, isStorableTime, toPage, type Page } from '../paging.js';
import type { TelemetryPosition, TelemetryStore } from '../store/telemetry.pg.js';

/** One item of `GET /api/v1/devices/{id}/telemetry`. */
export interface TelemetryItem {
  /** When the server received the sample (ISO 8601). */
  at: string;
  telemetry: Telemetry;
}

export interface TelemetryQuery {
  from?: string;
  to?: string;
  limit: number;
  cursor?: string;
  /** `asc` (default) oldest first; `desc` newest first (DESIGN §2). */
  order?: 'asc' | 'desc';
}



/** A page ends at (receive time, row id) of its last sample: `[iso, id]`, id a bigint. */
const isPosition = (v: unknown): v is [string, string] =>
  Array.isArray(v) &&
  v.length === 2 &&
  typeof v[0] === 'string' &&
  isStorableTime(v[0]) &&
  typeof v[1] === 'string' &&
  /^\d{1,18}$/.test(v[1]);

function parseTime(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  if (!isStorableTime(value)) throw new Errors.VALIDATION(`query.${name} must be an ISO 8601 date-time between the years 0001 and 9999`);
  return new Date(value);
}

/**
 * Reads a device's telemetry history, paged by time: by receive time within
 * `from <= at < to`, oldest first or (`order=desc`) newest first, `limit` per page, `nextCursor` to go on.
 * Background retention deletes samples older than the configured days.
 */
export class TelemetryService {
  private pruneTimer: NodeJS.Timeout | undefined;
  private firstPrune: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: TelemetryStore,
    private readonly log: Logger,
    private readonly retentionDays: number,
  ) {}

  async page(deviceId: string, q: TelemetryQuery): Promise<Page<TelemetryItem>> {
    const from = parseTime('from', q.from);
    const to = parseTime('to', q.to);
    const position = q.cursor ? decodeCursor(q.cursor, isPosition) : undefined;
    const after: TelemetryPosition | undefined = position && { at: new Date(position[0]), id: position[1] };
    if (!(await this.store.deviceExists(deviceId))) throw new Errors.NOT_FOUND('device');
    const rows = await this.store.page(deviceId, { from, to, after, limit: q.limit + 1, order: q.order });
    return toPage(rows, q.limit, (r) => [r.at.toISOString(), r.id], (r) => ({ at: r.at.toISOString(), telemetry: r.data }));
  }

  /** Deletes samples older than the retention, in small batches; returns how many. */
  async prune(now = new Date()): Promise<number> {
    const before = new Date(now.getTime() - this.retentionDays * 86_400_000);
    let total = 0;
    for (;;) {
      const n = await this.store.pruneOlderThan(before, 5000);
      total += n;
      if (n < 5000) break;
    }
    if (total > 0) this.log.info({ rows: total, before: before.toISOString() }, 'old telemetry pruned');
    return total;
  }

  /** Prunes now and then every `everyMs` (default hourly); failures are logged and retried next time. */
  startRetention(everyMs = 3_600_000): void {
    const run = (): void => {
      this.prune().catch((err: Error) => this.log.warn({ err: err.message }, 'telemetry pruning failed; will retry'));
    };
    this.firstPrune = setTimeout(run, 5000);
    this.firstPrune.unref();
    this.pruneTimer = setInterval(run, everyMs);
    this.pruneTimer.unref();
  }

  stopRetention(): void {
    clearTimeout(this.firstPrune);
    clearInterval(this.pruneTimer);
  }
}
