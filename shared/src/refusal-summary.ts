/** At most one warn line per source and reason in this window. */
export const REFUSAL_WARN_WINDOW_MS = 60_000;
/** Past this many tracked sources, ones whose window has passed are forgotten. */
const MAX_TRACKED = 10_000;

/** The two levels a refusal is logged at; pino's Logger fits. */
export interface RefusalLogger {
  debug(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
}

/**
 * Logs refusals without letting one bad device or address flood the log (issue 10):
 * every refusal at debug, and a warn at most once a window per source and reason,
 * carrying `refused`, how many were refused since the previous warn. The broker's
 * refused packets, the server's refused events and refused device tokens all use it.
 */
export class RefusalSummary {
  private readonly windows = new Map<string, { since: number; count: number }>();

  constructor(
    private readonly log: RefusalLogger,
    private readonly now: () => number = Date.now,
  ) {}

  /** One refusal from `source` (a device id, or an address); `msg` is the fixed message of both lines. */
  refused(source: string, reason: string, msg: string, fields: Record<string, unknown> = {}): void {
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
    if (!window && this.windows.size >= MAX_TRACKED) {
      for (const [k, w] of this.windows) if (now - w.since >= REFUSAL_WARN_WINDOW_MS) this.windows.delete(k);
    }
    this.windows.set(key, { since: now, count: 0 });
    this.log.warn({ ...fields, reason, refused, windowS: REFUSAL_WARN_WINDOW_MS / 1000 }, msg);
  }
}
