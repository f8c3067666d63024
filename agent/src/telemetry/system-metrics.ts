import fs from 'node:fs/promises';
import os from 'node:os';
import type { Telemetry } from '@kernex/shared';

/** Where a device's telemetry comes from; the simulator plugs in a synthetic one. */
export interface MetricsSource {
  /** One sample, without `v` and `b` (the device adds them). */
  sample(): Promise<Telemetry>;
}

interface CpuTimes {
  idle: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

const round = (n: number, digits: number): number => Math.round(n * 10 ** digits) / 10 ** digits;

/** Memory in use as Linux counts it: MemTotal - MemAvailable (page cache is not "used"). */
async function memory(): Promise<[number, number]> {
  try {
    const info = await fs.readFile('/proc/meminfo', 'utf8');
    const kb = (name: string): number | undefined => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(info);
      return m ? Number(m[1]) * 1024 : undefined;
    };
    const total = kb('MemTotal');
    const available = kb('MemAvailable');
    if (total !== undefined && available !== undefined) return [total - available, total];
  } catch {
    // Not Linux: fall back to what Node reports.
  }
  return [os.totalmem() - os.freemem(), os.totalmem()];
}

/**
 * The host's own metrics: CPU % since the previous sample (the first sample
 * measures since boot), memory used/total, root disk free/total, load
 * averages and uptime. Rounded so the JSON stays short (DESIGN §3 telemetry
 * keys are short for metered links).
 */
export class SystemMetrics implements MetricsSource {
  private last = cpuTimes();

  constructor(private readonly diskPath = '/') {}

  async sample(): Promise<Telemetry> {
    const now = cpuTimes();
    const dTotal = now.total - this.last.total;
    const dIdle = now.idle - this.last.idle;
    this.last = now;
    const cpu = dTotal > 0 ? round(Math.min(100, Math.max(0, (100 * (dTotal - dIdle)) / dTotal)), 1) : 0;
    const t: Telemetry = { ts: Math.floor(Date.now() / 1000), cpu, mem: await memory() };
    try {
      const s = await fs.statfs(this.diskPath);
      t.disk = [s.bavail * s.bsize, s.blocks * s.bsize];
    } catch {
      // No statfs on this platform or path: leave the disk out rather than lie.
    }
    const [l1, l5, l15] = os.loadavg() as [number, number, number];
    t.load = [round(l1, 2), round(l5, 2), round(l15, 2)];
    t.up = Math.floor(os.uptime());
    return t;
  }
}
