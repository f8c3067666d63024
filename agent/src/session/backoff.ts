/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /** Upper bound of the first delay, in milliseconds. */
  baseMs: number;
  /** Largest upper bound a delay can reach, in milliseconds. */
  capMs: number;
  /** A number in [0, 1); injectable so tests are deterministic. */
  random?: () => number;
}

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential
 * Backoff And Jitter"): attempt n waits a uniformly random time in
 * [0, min(cap, base * 2^n)). The randomness is the point: after a server
 * restart a thousand devices spread their reconnects over the whole window
 * instead of returning together at each fixed period, as MQTT.js's own
 * `reconnectPeriod` would make them.
 */
export class Backoff {
  private attempt = 0;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    if (!(options.baseMs > 0) || !(options.capMs >= options.baseMs)) throw new RangeError('backoff needs 0 < baseMs <= capMs');
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call widens the window until it reaches the cap. */
  next(): number {
    const ceiling = Math.min(this.options.capMs, this.options.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.floor(this.random() * ceiling);
  }

  /** Attempts made since the last success. */
  get attempts(): number {
    return this.attempt;
  }

  /** After a success: the next failure starts from the smallest window again. */
  reset(): void {
    this.attempt = 0;
  }
}
