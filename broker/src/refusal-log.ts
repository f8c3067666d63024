import { RefusalSummary } from '@kernex/shared';
import type { Logger } from 'pino';
import type { BrokerMetrics } from './metrics.js';

export { REFUSAL_WARN_WINDOW_MS } from '@kernex/shared';

/**
 * Counts and logs what the broker refuses (DESIGN §3: dropped, counted and
 * logged): every refusal is counted in `kernex_mqtt_refused_total{reason}`,
 * and logged through a {@link RefusalSummary} (debug each, a warn summary per
 * source and reason at most once a window).
 */
export class RefusalLog {
  private readonly summary: RefusalSummary;

  constructor(
    private readonly metrics: BrokerMetrics,
    log: Logger,
    now: () => number = Date.now,
  ) {
    this.summary = new RefusalSummary(log, now);
  }

  /**
   * One refusal from `source` (a deviceId, or an address before authentication).
   * `msg` is the fixed message of both lines; `fields` go into them.
   */
  refused(source: string, reason: string, msg: string, fields: Record<string, unknown> = {}): void {
    this.metrics.refused.inc({ reason });
    this.summary.refused(source, reason, msg, fields);
  }
}
