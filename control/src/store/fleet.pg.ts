import type { Sql } from 'postgres';

/** Fleet-wide aggregates for the console's overview (DESIGN §9): computed by PostgreSQL, never by paging every row. */
export interface FleetSummaryRow {
  byStatus: Record<string, number>;
  online: number;
  offline: number;
  total: number;
  versions: Array<{ name: string; version: string; devices: number }>;
  deploymentsRunning: number;
}

/** One bucket of a downsampled telemetry series; null where no sample of the bucket had the metric. */
export interface SeriesPoint {
  at: Date;
  cpu: number | null;
  mem: number | null;
  disk: number | null;
  load: number | null;
  samples: number;
}

/** One execution on a device, with the bundle its deployment installs. */
export interface DeviceExecutionRow {
  id: string;
  deploymentId: string;
  bundleName: string;
  bundleVersion: string;
  state: string;
  error: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Read-only SQL over `devices`, `executions` and `device_telemetry` for the console's views. */
export class FleetStore {
  constructor(private readonly sql: Sql) {}

  async summary(): Promise<FleetSummaryRow> {
    const sql = this.sql;
    const statuses = await sql<{ status: string; online: boolean; n: number }[]>`
      select status, online, count(*)::int as n from devices group by status, online`;
    const versions = await sql<{ name: string; version: string; devices: number }[]>`
      select b.key as name, b.value as version, count(*)::int as devices
      from devices d, jsonb_each_text(d.bundles) b
      where d.status <> 'decommissioned'
      group by b.key, b.value order by b.key, b.value limit 500`;
    const [running] = await sql<{ n: number }[]>`select count(*)::int as n from deployments where status = 'running'`;
    const byStatus: Record<string, number> = {};
    let online = 0;
    let total = 0;
    for (const r of statuses) {
      byStatus[r.status] = (byStatus[r.status] ?? 0) + r.n;
      total += r.n;
      if (r.online) online += r.n;
    }
    return { byStatus, online, offline: total - online, total, versions, deploymentsRunning: running?.n ?? 0 };
  }

  /** How many accepted devices a deployment target would match now (the rule of DeploymentsStore.resolveTarget). */
  async targetCount(t: { deviceIds: string[]; tags: string[]; all: boolean }): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`
      select count(*)::int as n from devices
      where status = 'accepted' and (${t.all} or id = any(${t.deviceIds}::text[]) or tags && ${t.tags}::text[])`;
    return row?.n ?? 0;
  }

  /** A device's executions, newest first. */
  async deviceExecutions(deviceId: string, limit: number): Promise<DeviceExecutionRow[]> {
    return this.sql<DeviceExecutionRow[]>`
      select e.id, e.deployment_id as "deploymentId", d.bundle_name as "bundleName", d.bundle_version as "bundleVersion",
             e.state, e.error, e.created_at as "createdAt", e.updated_at as "updatedAt"
      from executions e join deployments d on d.id = e.deployment_id
      where e.device_id = ${deviceId}
      order by e.created_at desc, e.id limit ${limit}`;
  }

  /** Execution counts per phase and state of one deployment. */
  async phaseCounts(deploymentId: string): Promise<Array<{ phase: number; state: string; n: number }>> {
    return this.sql<Array<{ phase: number; state: string; n: number }>>`
      select phase, state, count(*)::int as n from executions where deployment_id = ${deploymentId}
      group by phase, state order by phase, state`;
  }

  /**
   * A device's telemetry in `bucketS`-second buckets since `since`: mean CPU %,
   * memory used %, disk used % (disk is [free, total], DESIGN §3) and 1-minute
   * load. Values that are not numbers count as absent.
   */
  async series(deviceId: string, since: Date, bucketS: number): Promise<SeriesPoint[]> {
    const num = (expr: string): string => `case when jsonb_typeof(${expr}) = 'number' then (${expr})::text::float8 end`;
    const sql = this.sql;
    return sql<SeriesPoint[]>`
      select date_bin(make_interval(secs => ${bucketS}), at, timestamptz 'epoch') as at,
             avg(${sql.unsafe(num("data->'cpu'"))}) as cpu,
             avg(100 * ${sql.unsafe(num("data->'mem'->0"))} / nullif(${sql.unsafe(num("data->'mem'->1"))}, 0)) as mem,
             avg(100 - 100 * ${sql.unsafe(num("data->'disk'->0"))} / nullif(${sql.unsafe(num("data->'disk'->1"))}, 0)) as disk,
             avg(${sql.unsafe(num("data->'load'->0"))}) as load,
             count(*)::int as samples
      from device_telemetry
      where device_id = ${deviceId} and at >= ${since}
      group by 1 order by 1`;
  }
}
