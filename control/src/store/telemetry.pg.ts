import type { Sql } from 'postgres';
import type { Telemetry } from '@kernex/shared';

/** One telemetry message as the server received it. */
export interface TelemetrySample {
  deviceId: string;
  /** When the server received it: device clocks are not trusted for ordering. */
  at: Date;
  data: Telemetry;
}

/** A stored sample, with the id that breaks ties between samples of the same instant. */
export interface TelemetryRow {
  id: string;
  at: Date;
  data: Telemetry;
}

/** Position after which the next page starts: (at, id) of the last row of a page. */
export interface TelemetryPosition {
  at: Date;
  id: string;
}

/** SQL for `device_telemetry` and the latest-values columns of `devices`. */
export class TelemetryStore {
  constructor(private readonly sql: Sql) {}

  /**
   * Writes a batch in one transaction: every sample into `device_telemetry`
   * (one INSERT over unnest'ed arrays, so the statement is the same for every
   * batch size and stays prepared; ids follow arrival order) and each device's newest sample into
   * `devices.telemetry`. Samples of devices that no longer exist are skipped.
   * A sample's `b` corrects the device's `bundles` (DESIGN §5), unless an
   * execution event set `bundles` after the sample arrived.
   */
  async insertBatch(samples: readonly TelemetrySample[]): Promise<number> {
    if (samples.length === 0) return 0;
    const latest = new Map<string, TelemetrySample>();
    for (const s of samples) {
      const prev = latest.get(s.deviceId);
      if (!prev || prev.at <= s.at) latest.set(s.deviceId, s);
    }
    const ids = samples.map((s) => s.deviceId);
    const ats = samples.map((s) => s.at.toISOString());
    const datas = samples.map((s) => JSON.stringify(s.data));
    const lIds = [...latest.keys()];
    const lAts = [...latest.values()].map((s) => s.at.toISOString());
    const lDatas = [...latest.values()].map((s) => JSON.stringify(s.data));
    return this.sql.begin(async (tx) => {
      const inserted = await tx`
        insert into device_telemetry (device_id, at, data)
        select t.device_id, t.at, t.data::jsonb
        from unnest(${ids}::text[], ${ats}::timestamptz[], ${datas}::text[]) with ordinality as t(device_id, at, data, n)
        where exists (select 1 from devices d where d.id = t.device_id)
        order by t.n`;
      await tx`
        update devices d set telemetry = t.data::jsonb, telemetry_at = t.at,
          bundles = case when t.data::jsonb ? 'b' and (d.bundles_at is null or d.bundles_at <= t.at) then t.data::jsonb -> 'b' else d.bundles end
        from unnest(${lIds}::text[], ${lAts}::timestamptz[], ${lDatas}::text[]) as t(device_id, at, data)
        where d.id = t.device_id and (d.telemetry_at is null or d.telemetry_at <= t.at)`;
      return inserted.count;
    });
  }

  /**
   * One page of a device's samples, `from <= at < to`, in time order (`asc`) or newest first
   * (`desc`), after `after` in that order.
   */
  async page(
    deviceId: string,
    q: { from?: Date; to?: Date; after?: TelemetryPosition; limit: number; order?: 'asc' | 'desc' },
  ): Promise<TelemetryRow[]> {
    const from = q.from ?? new Date(0);
    const to = q.to ?? new Date('9999-12-31T00:00:00Z');
    if (q.order === 'desc') {
      const before = q.after ? this.sql`and (at, id) < (${q.after.at}::timestamptz, ${q.after.id}::bigint)` : this.sql``;
      return this.sql<TelemetryRow[]>`
        select id::text as id, at, data from device_telemetry
        where device_id = ${deviceId} and at >= ${from} and at < ${to} ${before}
        order by at desc, id desc
        limit ${q.limit}`;
    }
    const afterAt = q.after?.at ?? new Date(0);
    const afterId = q.after?.id ?? '0';
    return this.sql<TelemetryRow[]>`
      select id::text as id, at, data from device_telemetry
      where device_id = ${deviceId} and at >= ${from} and at < ${to}
        and (at, id) > (${afterAt}::timestamptz, ${afterId}::bigint)
      order by at, id
      limit ${q.limit}`;
  }

  async deviceExists(deviceId: string): Promise<boolean> {
    const rows = await this.sql`select 1 from devices where id = ${deviceId}`;
    return rows.length > 0;
  }

  /** Deletes up to `batch` samples older than `before`; returns how many. Called in a loop so no delete holds locks long. */
  async pruneOlderThan(before: Date, batch: number): Promise<number> {
    const result = await this.sql`
      delete from device_telemetry where id in (
        select id from device_telemetry where at < ${before} order by at limit ${batch})`;
    return result.count;
  }
}
