import { describe, expect, it } from 'vitest';
import type { Window } from './cluster.bench.js';
import { limitedBy } from './cluster-report.js';

const window = (over: Partial<Window>): Window => ({ wallS: 10, nodeCpuS: [5], clientCpuS: 5, redisCpuS: 0.5, postgresCpuS: 1, redisCommands: 0, busSent: 0, busByKind: {}, machineCpuS: 0, ...over });

describe('limitedBy', () => {
  it('names the machine, and the side with the larger share, when nearly every core was busy', () => {
    expect(limitedBy(window({ nodeCpuS: [6, 5], clientCpuS: 6 }), 2)).toMatch(/^the machine: 1\.85 of 2 cores busy, of ours the larger share the server side/);
    expect(limitedBy(window({ nodeCpuS: [4], clientCpuS: 12 }), 2)).toMatch(/the larger share the client side/);
  });

  it('counts what other processes took from the machine', () => {
    expect(limitedBy(window({ nodeCpuS: [4], clientCpuS: 2, redisCpuS: 0, postgresCpuS: 0, machineCpuS: 19 }), 2)).toMatch(/^the machine: 1\.90 of 2 cores busy.*other processes 1\.30 cores/);
  });

  it("names one node's thread when that node was near a whole core and the machine was not full", () => {
    expect(limitedBy(window({ nodeCpuS: [9.5], clientCpuS: 2, redisCpuS: 0, postgresCpuS: 0 }), 4)).toMatch(/^one node's JavaScript thread \(0\.95 cores/);
  });

  it('says nothing was CPU-bound when the cores were mostly idle, and skips a killed node', () => {
    expect(limitedBy(window({ nodeCpuS: [2, NaN], clientCpuS: 2, redisCpuS: 0, postgresCpuS: 1 }), 2)).toMatch(/^not CPU: 0\.50 of 2 cores busy/);
  });
});
