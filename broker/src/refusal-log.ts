import type { Logger } from 'pino';
import type { BrokerMetrics } from './metrics.js';

/** At most one warn line per source and reason in this window. */
export const REFUSAL_WARN_WINDOW_MS = 60_000;
/** Past this many tracked sources, ones whose window has passed are forgotten. */
const MAX_TRACKED = 10_000;

/**
 * Counts and logs what the broker refuses (DESIGN §3: dropped, counted and
 * logged) without letting one bad device or address flood the log: every
 * refusal is counted in `kernex_mqtt_refused_total{reason}` and logged at
 * debug; a warn summary goes out at most once a window per source (device or
 * address) and reason, with how many were refused since the previous one.
 */
export class RefusalLog {
  private readonly windows = new Map<string, { since: number; count: number }>();

  constructor(
    private readonly metrics: BrokerMetrics,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * One refusal from `source` (a deviceId, or an address before authentication).
   * `msg` is the fixed message of both lines; `fields` go into them.
   */
  refused(source: string, reason: string, msg: string, fields: Record<string, unknown> = {}): void {
    this.metrics.refused.inc({ reason });
    this.log.debug({ ...fields, reason }, msg);
    const key = `${reason} ${source}`;
    const now = this.now();
    const window = this.windows.get(key);
    if (window && now - window.since < REFUSAL_WARN_WINDOW_MS) {
      window.count++;
      return;
    }
    // The first refusal of a window speaks for the ones counted since the last line.
    const refused = (window?.count ?? 0) + 1;
    if (!window && this.windows.size >= MAX_TRACKED) this.prune(now);
    this.windows.set(key, { since: now, count: 0 });
    this.log.warn({ ...fields, reason, refused, windowS: REFUSAL_WARN_WINDOW_MS / 1000 }, msg);
  }

  private prune(now: number): void {
    for (const [key, w] of this.windows) if (now - w.since >= REFUSAL_WARN_WINDOW_MS) this.windows.delete(key);
  }
}
