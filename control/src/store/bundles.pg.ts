import { ACTIVE_STATES, type BundleManifest, type BundleRef } from '@kernex/shared';
import type { PendingQuery, Row, Sql } from 'postgres';
import { toPage, type CursorKey, type Page } from '../paging.js';

/** A bundle as stored. */
export interface BundleRow extends Omit<BundleRef, 'url'> {
  manifest: BundleManifest;
  createdAt: Date;
}

interface Raw {
  id: string;
  name: string;
  version: string;
  sha256: string;
  size: string;
  signature: string;
  manifest: BundleManifest;
  created_at: Date;
  at: string;
}

const toRow = (r: Raw): BundleRow => ({
  id: r.id,
  name: r.name,
  version: r.version,
  sha256: r.sha256,
  size: Number(r.size),
  signature: r.signature,
  manifest: r.manifest,
  createdAt: r.created_at,
});

/** Execution states before an end: the bundle of such an execution is in use. */
const LIVE_STATES = ACTIVE_STATES;

/** A bundle row removed by retention. */
export interface PrunedBundle {
  id: string;
  name: string;
  version: string;
}

/** Bundle rows (SQL lives only in store/). */
export class BundlesStore {
  constructor(private readonly sql: Sql) {}

  /** Inserts; returns undefined when `(name, version)` exists already. */
  async insert(b: Omit<BundleRow, 'createdAt'>): Promise<BundleRow | undefined> {
    const [row] = await this.sql<Raw[]>`
      insert into bundles (id, name, version, sha256, size, signature, manifest)
      values (${b.id}, ${b.name}, ${b.version}, ${b.sha256}, ${b.size}, ${b.signature}, ${this.sql.json(b.manifest as never)})
      on conflict (name, version) do nothing
      returning *`;
    return row ? toRow(row) : undefined;
  }

  async exists(name: string, version: string): Promise<boolean> {
    const [row] = await this.sql`select 1 from bundles where name = ${name} and version = ${version}`;
    return Boolean(row);
  }

  async get(id: string): Promise<BundleRow | undefined> {
    const [row] = await this.sql<Raw[]>`select * from bundles where id = ${id}`;
    return row ? toRow(row) : undefined;
  }

  async list(limit: number, after?: CursorKey, name?: string): Promise<Page<BundleRow>> {
    const rows = await this.sql<Raw[]>`
      select *, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at from bundles
      where true
        ${name ? this.sql`and name = ${name}` : this.sql``}
        ${after ? this.sql`and (created_at, id) < (${after.at}::timestamptz, ${after.id}::uuid)` : this.sql``}
      order by created_at desc, id desc
      limit ${limit + 1}`;
    return toPage(rows, limit, (r) => ({ at: r.at, id: r.id }), toRow);
  }

  /**
   * Ids of the bundles in use, which are never deleted (DESIGN §4): a running
   * deployment's, a live execution's, or one installed on any device (its
   * `bundles`, name → version).
   */
  private inUse(): PendingQuery<Row[]> {
    return this.sql`
      select bundle_id as id from deployments where status = 'running' and bundle_id is not null
      union
      select d.bundle_id from executions e join deployments d on d.id = e.deployment_id
        where e.state = any(${LIVE_STATES}::text[]) and d.bundle_id is not null
      union
      select b.id from bundles b join (
        select distinct kv.key, kv.value from devices v, jsonb_each_text(v.bundles) kv where jsonb_typeof(v.bundles) = 'object'
      ) installed on installed.key = b.name and installed.value = b.version`;
  }

  /**
   * Deletes unless the bundle is in use (see {@link inUse}).
   * Answers 'deleted', 'absent' or 'in-use'.
   */
  async delete(id: string): Promise<'deleted' | 'absent' | 'in-use'> {
    return this.sql.begin(async (tx) => {
      const [row] = await tx`select id from bundles where id = ${id} for update`;
      if (!row) return 'absent';
      const [used] = await tx`select 1 from (${this.inUse()}) u where u.id = ${id} limit 1`;
      if (used) return 'in-use';
      await tx`delete from bundles where id = ${id}`;
      return 'deleted';
    });
  }

  /**
   * Retention (DESIGN §4): per name, keeps the newest `keep` versions by upload
   * time among those not in use, and deletes the older ones. Versions in use
   * are kept in addition and do not count. Answers the rows deleted; their
   * blobs are the caller's to remove.
   */
  async pruneBeyond(keep: number): Promise<PrunedBundle[]> {
    const pruned = await this.sql.begin(async (tx) => {
      const candidates = await tx<{ id: string }[]>`
        with ranked as (
          select id, row_number() over (partition by name order by created_at desc, id desc) as n
          from bundles b where not exists (select 1 from (${this.inUse()}) u where u.id = b.id)
        )
        select id from ranked where n > ${keep}`;
      if (candidates.length === 0) return [];
      const ids = candidates.map((c) => c.id);
      // Locked, then checked again in a fresh snapshot: a deployment of one of them
      // committed meanwhile keeps it, and one not yet committed waits for this
      // transaction (its foreign key check) and then finds the bundle gone.
      await tx`select id from bundles where id = any(${ids}::uuid[]) for update`;
      return tx<PrunedBundle[]>`
        delete from bundles b
        where b.id = any(${ids}::uuid[]) and not exists (select 1 from (${this.inUse()}) u where u.id = b.id)
        returning b.id, b.name, b.version`;
    });
    return [...(pruned as PrunedBundle[])];
  }

  /** Every bundle id (the orphan sweep compares them with the stored blobs). */
  async allIds(): Promise<Set<string>> {
    const rows = await this.sql<{ id: string }[]>`select id from bundles`;
    return new Set(rows.map((r) => r.id));
  }

  /** Those of `ids` that still have a row. */
  async existing(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.sql<{ id: string }[]>`select id from bundles where id = any(${ids}::uuid[])`;
    return rows.map((r) => r.id);
  }

}
