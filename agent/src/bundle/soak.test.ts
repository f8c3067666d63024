import { describe, expect, it } from 'vitest';
import { checkEveryMs, progressEveryMs, runSoak, soakProgress, type SoakRecord } from './soak.js';

describe('soak schedule', () => {
  it('checks every min(30 s, soakS/4) (DESIGN §5)', () => {
    expect(checkEveryMs(20)).toBe(5000);
    expect(checkEveryMs(600)).toBe(30_000);
  });

  it('reports progress at least three times per timeoutS, however long the soak', () => {
    expect(progressEveryMs(600, 60)).toBe(20_000);
    expect(progressEveryMs(20, 3600)).toBe(5000);
  });

  it('counts progress from the soak start, capped at 100', () => {
    const rec: SoakRecord = { startedAt: 1000, soakS: 10, timeoutS: 60, env: {} };
    expect([soakProgress(rec, 1000), soakProgress(rec, 6000), soakProgress(rec, 99_000)]).toEqual([0, 50, 100]);
  });

  it('runs the check once more at the end, and stops at the first failed check', async () => {
    const checks: number[] = [];
    const startedAt = Date.now();
    const done = await runSoak({ startedAt, soakS: 0.2, timeoutS: 60, env: {} }, { check: async () => void checks.push(Date.now()), progress: async () => {} });
    expect(done).toBeUndefined();
    // Every 50 ms (fewer on a loaded machine, never more), the last one at the end.
    expect(checks.length).toBeGreaterThanOrEqual(2);
    expect(checks.length).toBeLessThanOrEqual(4);
    expect(checks.at(-1)).toBeGreaterThanOrEqual(startedAt + 200);
    let n = 0;
    const failed = await runSoak({ startedAt: Date.now(), soakS: 0.2, timeoutS: 60, env: {} }, { check: async () => (++n === 2 ? 'bad' : undefined), progress: async () => {} });
    expect([failed, n]).toEqual(['bad', 2]);
  });

  it('after a restart past the end, checks once and ends', async () => {
    let n = 0;
    const done = await runSoak({ startedAt: Date.now() - 60_000, soakS: 10, timeoutS: 60, env: {} }, { check: async () => void n++, progress: async () => {} });
    expect([done, n]).toEqual([undefined, 1]);
  });
});
