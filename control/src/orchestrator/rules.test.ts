import { describe, expect, it } from 'vitest';
import { assignPhases, judgeTransition, pastThreshold, phasesProblem } from './rules.js';

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
  const p = (...percents: number[]) => percents.map((percent) => ({ percent, waitS: 0 }));
  it('releases devices up to each cumulative percent, rounded up, and the rest in the last phase', () => {
    expect(assignPhases(10, p(10, 50, 100))).toEqual([0, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    expect(assignPhases(3, p(10, 100))).toEqual([0, 1, 1]);
    expect(assignPhases(1, p(50, 100))).toEqual([0]);
    expect(assignPhases(4, p(100))).toEqual([0, 0, 0, 0]);
    expect(assignPhases(200, p(1, 10, 100)).filter((x) => x === 0)).toHaveLength(2);
    expect(assignPhases(200, p(1, 10, 100)).filter((x) => x === 1)).toHaveLength(18);
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

describe('phasesProblem', () => {
  const p = (...percents: number[]) => percents.map((percent) => ({ percent, waitS: 5 }));
  it('accepts cumulative percents that rise strictly to 100', () => {
    expect(phasesProblem(p(1, 10, 100))).toBeUndefined();
    expect(phasesProblem(p(100))).toBeUndefined();
  });
  it('refuses percents that do not rise, naming the phase', () => {
    expect(phasesProblem(p(10, 40, 50))).toMatch(/^body\.rollout\.phases\.2\.percent must be 100/);
    expect(phasesProblem(p(50, 50, 100))).toMatch(/^body\.rollout\.phases\.1\.percent must be more than the phase before it/);
    expect(phasesProblem(p(60, 40, 100))).toMatch(/phases\.1\.percent/);
  });
  it('refuses a last phase below 100', () => {
    expect(phasesProblem(p(10, 90))).toMatch(/^body\.rollout\.phases\.1\.percent must be 100/);
  });
});
