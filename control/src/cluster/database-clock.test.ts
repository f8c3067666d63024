import { describe, expect, it } from 'vitest';
import { DatabaseClock } from './database-clock.js';

describe('a node clock corrected to the database clock', () => {
  it('leaves times alone before the first sample', () => {
    expect(new DatabaseClock().toDatabaseTime(new Date(5000)).getTime()).toBe(5000);
  });

  it('adds the offset at the middle of the round trip, from the sample with the shortest round trip', () => {
    const clock = new DatabaseClock();
    // The database is 60 s ahead: a 20 ms round trip says so within 10 ms; a slow one (800 ms) is off by up to 400 ms.
    clock.sample(1_000, 1_020, new Date(61_010));
    clock.sample(2_000, 2_800, new Date(62_000));
    expect(clock.toDatabaseTime(new Date(10_000)).getTime()).toBe(70_000);
  });

  it('forgets old samples', () => {
    const clock = new DatabaseClock();
    clock.sample(0, 0, new Date(1_000));
    for (let i = 1; i <= 8; i++) clock.sample(i * 2000, i * 2000 + 100, new Date(i * 2000 + 50 - 5_000));
    expect(clock.toDatabaseTime(new Date(100_000)).getTime()).toBe(95_000);
  });
});
