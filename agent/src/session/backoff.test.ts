import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff.js';

describe('Backoff', () => {
  it('doubles the window each attempt until the cap', () => {
    const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999999 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([99, 199, 399, 799, 999, 999]);
    expect(b.attempts).toBe(6);
  });

  it('draws each delay uniformly from the whole window (full jitter)', () => {
    const draws = [0, 0.5, 0.25];
    const b = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => draws.shift()! });
    expect([b.next(), b.next(), b.next()]).toEqual([0, 1000, 1000]);
  });

  it('spreads many devices over the window instead of one instant', () => {
    const delays = Array.from({ length: 1000 }, () => {
      const b = new Backoff({ baseMs: 1000, capMs: 60_000 });
      for (let i = 0; i < 6; i++) b.next();
      return b.next();
    });
    // Window 60 s after 6 failures: the 1000 delays fall into all six 10-second buckets.
    const buckets = new Set(delays.map((d) => Math.floor(d / 10_000)));
    expect(buckets).toEqual(new Set([0, 1, 2, 3, 4, 5]));
    expect(Math.max(...delays)).toBeLessThan(60_000);
  });

  it('starts from the smallest window after reset', () => {
    const b = new Backoff({ baseMs: 100, capMs: 10_000, random: () => 0.999999 });
    b.next();
    b.next();
    b.next();
    b.reset();
    expect(b.next()).toBe(99);
  });

  it('refuses a cap below the base', () => {
    expect(() => new Backoff({ baseMs: 100, capMs: 10 })).toThrow(RangeError);
  });
});
