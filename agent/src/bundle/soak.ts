import { setTimeout as sleep } from 'node:timers/promises';

/**
 * What the agent keeps of a soak in its state directory (DESIGN §5 `soakS`),
 * so a restart or a reboot carries the soak on where it was instead of
 * forgetting it. Wall-clock times: a reboot loses every monotonic clock.
 */
export interface SoakRecord {
  /** When the soak began (after the switch), ms since the epoch. */
  startedAt: number;
  soakS: number;
  /** The deploy's timeoutS: progress is reported often enough to stay under it. */
  timeoutS: number;
  /** The health check to re-run, as the manifest gave it (none: the soak only waits). */
  check?: { script: string; timeoutS: number };
  /** The environment the install and the first check had. */
  env: Record<string, string>;
}

/** Longest time between two checks of a soak (DESIGN §5: every min(30 s, soakS/4)). */
const MAX_CHECK_EVERY_MS = 30_000;
/** Progress events per timeoutS at least, so a soak longer than timeoutS is never mistaken for a stall. */
const PROGRESS_PER_TIMEOUT = 3;

/** Milliseconds between checks for a soak of `soakS` seconds. */
export function checkEveryMs(soakS: number): number {
  return Math.max(1, Math.min(MAX_CHECK_EVERY_MS, (soakS * 1000) / 4));
}

/** Milliseconds between progress events: as often as checks, and at least three times per timeoutS. */
export function progressEveryMs(soakS: number, timeoutS: number): number {
  return Math.max(500, Math.min(checkEveryMs(soakS), (timeoutS * 1000) / PROGRESS_PER_TIMEOUT));
}

/** Share of the soak done at `now`, 0..100. */
export function soakProgress(rec: SoakRecord, now: number): number {
  const done = (now - rec.startedAt) / (rec.soakS * 1000);
  return Math.round(Math.min(1, Math.max(0, done)) * 100);
}

/**
 * Runs (or carries on) a soak: waits until `startedAt + soakS`, running
 * `check` every {@link checkEveryMs} and once more at the end, and calling
 * `progress` every {@link progressEveryMs} on its own timer (a long check
 * still reports). Resolves with the first failed check's error, or undefined
 * once the soak passed. `now` is injectable for tests.
 */
export async function runSoak(
  rec: SoakRecord,
  hooks: { check: () => Promise<string | undefined>; progress: (percent: number) => Promise<void>; now?: () => number },
): Promise<string | undefined> {
  const now = hooks.now ?? Date.now;
  const endAt = rec.startedAt + rec.soakS * 1000;
  const every = checkEveryMs(rec.soakS);
  let reporting = Promise.resolve();
  const timer = setInterval(() => {
    reporting = reporting.then(() => hooks.progress(soakProgress(rec, now()))).catch(() => {});
  }, progressEveryMs(rec.soakS, rec.timeoutS));
  try {
    // The first progress event says the soak has begun (or resumed), and where it stands.
    await hooks.progress(soakProgress(rec, now()));
    // The slot of the last check: a timer that wakes a millisecond early must not run one slot twice.
    let slot = 0;
    for (;;) {
      const t = now();
      // Checks fall on the soak's own schedule (startedAt + k·every), so a resumed soak keeps it.
      slot = Math.max(slot + 1, Math.floor((t - rec.startedAt) / every) + 1);
      const next = Math.min(endAt, rec.startedAt + slot * every);
      if (next > t) await sleep(next - t);
      const error = await hooks.check();
      if (error !== undefined) return error;
      await hooks.progress(soakProgress(rec, now()));
      // The check at the end is the last one, whenever the timer woke.
      if (next >= endAt || now() >= endAt) return undefined;
    }
  } finally {
    clearInterval(timer);
    await reporting;
  }
}
