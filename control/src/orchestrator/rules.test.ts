import { describe, expect, it } from 'vitest';
import { assignPhases, judgeTransition, normalisePhases, pastThreshold } from './rules.js';

describe('judgeTransition', () => {
  it.each([
    ['sent', 'received', 'apply'],
    ['sent', 'installing', 'apply'],
    ['queued', 'received', 'apply'],
    ['downloading', 'downloading', 'same'],
    ['installing', 'downloading', 'refuse'],
    ['verifying', 'received', 'refuse'],
    ['received', 'queued', 'refuse'],
    ['received', 'sent', 'refuse'],
    ['downloading', 'failed', 'apply'],
    ['verifying', 'rolled_back', 'apply'],
    ['succeeded', 'rolled_back', 'refuse'],
    ['succeeded', 'failed', 'refuse'],
    ['failed', 'succeeded', 'refuse'],
    ['cancelled', 'received', 'refuse'],
    ['timed_out', 'succeeded', 'refuse'],
  ] as const)('%s → %s: %s', (from, to, verdict) => {
    expect(judgeTransition(from, to)).toBe(verdict);
  });

  it('leaves succeeded for rolled_back only when the server asked the rollback', () => {
    expect(judgeTransition('succeeded', 'rolled_back', true)).toBe('apply');
    expect(judgeTransition('succeeded', 'rolled_back', false)).toBe('refuse');
    expect(judgeTransition('failed', 'rolled_back', true)).toBe('refuse');
  });
});

describe('assignPhases', () => {
  it('gives each phase its share, rounded up, and the rest to the last', () => {
    expect(assignPhases(10, [{ percent: 10, waitS: 0 }, { percent: 40, waitS: 0 }, { percent: 50, waitS: 0 }])).toEqual([0, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    expect(assignPhases(3, [{ percent: 10, waitS: 0 }, { percent: 10, waitS: 0 }])).toEqual([0, 1, 1]);
    expect(assignPhases(1, [{ percent: 50, waitS: 0 }, { percent: 50, waitS: 0 }])).toEqual([0]);
    expect(assignPhases(4, [{ percent: 100, waitS: 0 }])).toEqual([0, 0, 0, 0]);
  });
});

describe('pastThreshold', () => {
  it('compares failures with the share of released executions', () => {
    expect(pastThreshold(0, 0, 0)).toBe(false);
    expect(pastThreshold(1, 10, 10)).toBe(false);
    expect(pastThreshold(2, 10, 10)).toBe(true);
    expect(pastThreshold(1, 2, 0)).toBe(true);
    expect(pastThreshold(5, 5, 100)).toBe(false);
  });
});

describe('normalisePhases', () => {
  const p = (...percents: number[]) => percents.map((percent) => ({ percent, waitS: 5 }));
  it('turns cumulative percentages ending at 100 into shares', () => {
    expect(normalisePhases(p(10, 50, 100))).toEqual(p(10, 40, 50));
    expect(normalisePhases(p(100))).toEqual(p(100));
  });
  it('refuses lists that do not rise strictly to 100 (DESIGN §5)', () => {
    expect(normalisePhases(p(10, 40, 50))).toBeUndefined();
    expect(normalisePhases(p(10, 90))).toBeUndefined();
    expect(normalisePhases(p(50))).toBeUndefined();
    expect(normalisePhases(p(60, 60))).toBeUndefined();
    expect(normalisePhases(p(50, 100, 100))).toBeUndefined();
  });
});
