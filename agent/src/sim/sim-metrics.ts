import type { Telemetry } from '@kernex/shared';
import type { MetricsSource } from '../telemetry/system-metrics.js';

const MIB = 1024 * 1024;

/**
 * Plausible, slowly wandering metrics for a simulated device: reading
 * /proc ten thousand times a minute would measure the simulator's host,
 * not the fleet. Same keys and shapes as {@link SystemMetrics}.
 */
export class SimulatedMetrics implements MetricsSource {
  private cpu = Math.random() * 30;
  private memUsed = (100 + Math.random() * 200) * MIB;
  private readonly memTotal = 512 * MIB;
  private readonly diskTotal = 8 * 1024 * MIB;
  private diskFree = (2 + Math.random() * 4) * 1024 * MIB;
  private readonly bootedAt = Date.now() - Math.floor(Math.random() * 86_400_000);

  async sample(): Promise<Telemetry> {
    this.cpu = clamp(this.cpu + (Math.random() - 0.5) * 10, 0, 100);
    this.memUsed = clamp(this.memUsed + (Math.random() - 0.5) * 8 * MIB, 32 * MIB, this.memTotal);
    this.diskFree = clamp(this.diskFree - Math.random() * MIB, 0, this.diskTotal);
    const load = Math.round(this.cpu) / 50;
    return {
      ts: Math.floor(Date.now() / 1000),
      cpu: Math.round(this.cpu * 10) / 10,
      mem: [Math.round(this.memUsed), this.memTotal],
      disk: [Math.round(this.diskFree), this.diskTotal],
      load: [load, load, load],
      up: Math.floor((Date.now() - this.bootedAt) / 1000),
    };
  }
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, n));
}
