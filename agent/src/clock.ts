/**
 * The device's idea of the server's time. A device without a real-time clock
 * may boot in 1970; its JWTs would then be refused (DESIGN §2 accepts
 * `iat - 300 s <= now < exp`). The agent keeps an offset learned from the
 * server and signs with local time + offset; it never sets the system clock.
 */
export class Clock {
  constructor(private offsetMs = 0) {}

  /** Milliseconds to add to local time to get server time. */
  get offset(): number {
    return this.offsetMs;
  }

  /** Server time now, in seconds since the epoch. */
  nowS(): number {
    return Math.floor((Date.now() + this.offsetMs) / 1000);
  }

  /** Restores an offset learned earlier (kept in the state directory). */
  restore(offsetMs: number): void {
    if (Number.isFinite(offsetMs)) this.offsetMs = offsetMs;
  }

  /**
   * Learns the offset from a server timestamp taken while a request was in
   * flight: the server's time is assumed to be the midpoint of the round trip.
   * Ignores a timestamp that cannot be parsed.
   */
  correct(serverMs: number, sentAtMs: number, receivedAtMs: number): void {
    if (!Number.isFinite(serverMs)) return;
    this.offsetMs = Math.round(serverMs - (sentAtMs + receivedAtMs) / 2);
  }
}
