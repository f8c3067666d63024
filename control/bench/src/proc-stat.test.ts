import { describe, expect, it } from 'vitest';
import { parseMachineBusySeconds, parseOpenFilesLimit, parseProcStat, treeCpuSeconds } from './proc-stat.js';

// A real line's shape (proc(5)); the name holds a space and a ')'.
const line = (pid: number, ppid: number, name: string, utime: number, stime: number, cutime = 0, cstime = 0): string =>
  `${pid} (${name}) S ${ppid} ${pid} ${pid} 0 -1 4194560 1200 0 0 0 ${utime} ${stime} ${cutime} ${cstime} 20 0 1 0 5000 123456789 2000 18446744073709551615`;

describe('parseProcStat', () => {
  it('reads ppid and CPU times in seconds after the last parenthesis of the name', () => {
    expect(parseProcStat(line(4242, 1, 'redis-server *:6379', 150, 50, 7, 3))).toEqual({ pid: 4242, ppid: 1, cpuS: 2, childrenCpuS: 0.1 });
    expect(parseProcStat(line(7, 2, 'a) b (c)', 1, 2)).cpuS).toBeCloseTo(0.03);
  });

  it('refuses a line that is not a stat line', () => {
    expect(() => parseProcStat('hello')).toThrow();
    expect(() => parseProcStat('12 (x) S 1')).toThrow();
  });
});

describe('treeCpuSeconds', () => {
  it('adds the live descendants and the reaped children of a postmaster, not its siblings', () => {
    const stats = [line(100, 1, 'postgres', 100, 100, 50, 50), line(101, 100, 'postgres', 300, 0), line(102, 101, 'postgres', 0, 100), line(200, 1, 'node', 999, 999)].map(parseProcStat);
    expect(treeCpuSeconds(stats, 100)).toBeCloseTo(7);
    expect(treeCpuSeconds(stats, 101)).toBeCloseTo(4);
  });

  it('throws for a process that is gone', () => {
    expect(() => treeCpuSeconds([], 5)).toThrow();
  });
});

describe('parseMachineBusySeconds', () => {
  it('adds user, nice, system, irq, softirq and steal of the aggregate line, not idle or iowait', () => {
    const stat = 'cpu  1000 50 300 90000 700 10 40 100 0 0\ncpu0 500 25 150 45000 350 5 20 50 0 0\nintr 1 2 3\n';
    expect(parseMachineBusySeconds(stat)).toBeCloseTo(15);
  });

  it('refuses text without the aggregate line', () => {
    expect(() => parseMachineBusySeconds('cpu0 1 2 3 4 5 6 7 8\n')).toThrow();
  });
});

describe('parseOpenFilesLimit', () => {
  const limits = (soft: string, hard: string): string =>
    `Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \nMax open files            ${soft}                ${hard}                files     \nMax locked memory         8388608              8388608              bytes     \n`;
  it('reads the soft limit of open files', () => {
    expect(parseOpenFilesLimit(limits('20000', '40000'))).toBe(20000);
    expect(parseOpenFilesLimit(limits('unlimited', 'unlimited'))).toBe(Infinity);
  });

  it('refuses a text without it', () => {
    expect(() => parseOpenFilesLimit('Max cpu time unlimited unlimited seconds\n')).toThrow();
  });
});
