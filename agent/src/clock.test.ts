import { describe, expect, it } from 'vitest';
import { Clock } from './clock.js';

describe('Clock', () => {
  it('learns the offset from a server time taken mid-flight', () => {
    const c = new Clock();
    // Sent at 1000, answered at 1200: the server said 10_100 at the midpoint 1100.
    c.correct(10_100, 1000, 1200);
    expect(c.offset).toBe(9000);
  });

  it('signs with local time plus the offset (a device that booted in 1970)', () => {
    const c = new Clock();
    const serverNow = Date.parse('2026-11-23T12:00:00Z');
    const local = Date.now();
    c.correct(serverNow, local, local);
    expect(Math.abs(c.nowS() - serverNow / 1000)).toBeLessThan(5);
  });

  it('ignores a time it cannot parse and keeps a restored offset', () => {
    const c = new Clock();
    c.restore(-5000);
    c.correct(Date.parse('not a date'), 0, 0);
    expect(c.offset).toBe(-5000);
  });
});
