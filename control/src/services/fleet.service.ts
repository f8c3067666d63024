import { EXECUTION_STATES } from '@kernex/shared';
import { Errors } from '../errors.js';
import type { FleetStore, FleetSummaryRow } from '../store/fleet.pg.js';

/** The windows a telemetry chart offers, and the bucket each is downsampled to (~120-170 points). */
export const SERIES_WINDOWS = { '1h': { ms: 3_600_000, bucketS: 30 }, '24h': { ms: 86_400_000, bucketS: 600 }, '7d': { ms: 604_800_000, bucketS: 3600 } } as const;
export type SeriesWindow = keyof typeof SERIES_WINDOWS;

/** A downsampled telemetry series as the API answers it. */
export interface SeriesView {
  window: SeriesWindow;
  bucketS: number;
  points: Array<{ at: string; cpu: number | null; mem: number | null; disk: number | null; load: number | null; samples: number }>;
}

const round = (v: number | null): number | null => (v === null ? null : Math.round(Number(v) * 100) / 100);

/** Aggregates over the fleet for the console (DESIGN §9: lists are paged and aggregated by the server). */
export class FleetService {
  constructor(
    private readonly store: FleetStore,
    private readonly deviceExists: (id: string) => Promise<boolean>,
    private readonly deploymentExists: (id: string) => Promise<boolean>,
  ) {}

  summary(): Promise<FleetSummaryRow> {
    return this.store.summary();
  }

  targetCount(q: { deviceIds?: string[]; tags?: string[]; all?: boolean }): Promise<number> {
    return this.store.targetCount({ deviceIds: q.deviceIds ?? [], tags: q.tags ?? [], all: q.all === true });
  }

  /** Per phase: counts of every execution state (zeros included). */
  async phases(deploymentId: string): Promise<Array<{ phase: number; total: number; counts: Record<string, number> }>> {
    if (!(await this.deploymentExists(deploymentId))) throw new Errors.NOT_FOUND('deployment');
    const byPhase = new Map<number, Record<string, number>>();
    for (const r of await this.store.phaseCounts(deploymentId)) {
      const counts = byPhase.get(r.phase) ?? Object.fromEntries(EXECUTION_STATES.map((s) => [s, 0]));
      counts[r.state] = r.n;
      byPhase.set(r.phase, counts);
    }
    return [...byPhase.entries()].map(([phase, counts]) => ({ phase, counts, total: Object.values(counts).reduce((a, b) => a + b, 0) }));
  }

  /** The device's last `limit` executions, newest first. */
  async deviceExecutions(deviceId: string, limit: number): Promise<Array<Record<string, unknown>>> {
    if (!(await this.deviceExists(deviceId))) throw new Errors.NOT_FOUND('device');
    const rows = await this.store.deviceExecutions(deviceId, limit);
    return rows.map((r) => ({
      id: r.id,
      deploymentId: r.deploymentId,
      bundle: { name: r.bundleName, version: r.bundleVersion },
      state: r.state,
      error: r.error,
      createdAt: r.createdAt.toISOString(),
      updatedAt: r.updatedAt.toISOString(),
    }));
  }

  async series(deviceId: string, window: SeriesWindow, now = new Date()): Promise<SeriesView> {
    if (!(await this.deviceExists(deviceId))) throw new Errors.NOT_FOUND('device');
    const w = SERIES_WINDOWS[window];
    const rows = await this.store.series(deviceId, new Date(now.getTime() - w.ms), w.bucketS);
    return {
      window,
      bucketS: w.bucketS,
      points: rows.map((r) => ({ at: r.at.toISOString(), cpu: round(r.cpu), mem: round(r.mem), disk: round(r.disk), load: round(r.load), samples: r.samples })),
    };
  }
}
