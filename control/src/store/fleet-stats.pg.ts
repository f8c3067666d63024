import type { Sql } from 'postgres';

/** Counts for the fleet gauges of /metrics (registerServerGauges in metrics.ts). */
export class FleetStatsStore {
  constructor(private readonly sql: Sql) {}

  async devicesByStatus(): Promise<Record<string, number>> {
    const rows = await this.sql<{ status: string; n: number }[]>`select status, count(*)::int as n from devices group by status`;
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async deploymentsByStatus(): Promise<Record<string, number>> {
    const rows = await this.sql<{ status: string; n: number }[]>`select status, count(*)::int as n from deployments group by status`;
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }
}
