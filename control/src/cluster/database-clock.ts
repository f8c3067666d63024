/** Samples kept: a renewal every RENEW_MS, so the last ~16 s. */
const SAMPLES = 8;

/**
 * This process's clock as the database's (DESIGN §8: a node whose clock is off
 * is judged by the database's clock). Each sample is one query answering
 * `now()`: the database's time then lies within the query's round trip, so the
 * offset is taken at its middle, from the recent sample with the shortest round
 * trip (a loaded event loop or network only makes a sample's round trip longer).
 */
export class DatabaseClock {
  private readonly samples: Array<{ rttMs: number; offsetMs: number }> = [];

  /** A query sent at `sentAt` and answered at `receivedAt` (this clock, ms) said the database's time was `databaseNow`. */
  sample(sentAt: number, receivedAt: number, databaseNow: Date | undefined): void {
    if (!databaseNow || receivedAt < sentAt) return;
    this.samples.push({ rttMs: receivedAt - sentAt, offsetMs: databaseNow.getTime() - (sentAt + receivedAt) / 2 });
    if (this.samples.length > SAMPLES) this.samples.shift();
  }

  /** `at` (this clock) on the database's clock; unchanged before any sample. */
  toDatabaseTime(at: Date): Date {
    let best: { rttMs: number; offsetMs: number } | undefined;
    for (const s of this.samples) if (!best || s.rttMs < best.rttMs) best = s;
    return best ? new Date(at.getTime() + best.offsetMs) : at;
  }
}
