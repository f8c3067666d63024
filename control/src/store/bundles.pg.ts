import type { BundleManifest, BundleRef } from '@kernex/shared';
import type { Sql } from 'postgres';
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
   * Deletes unless a running deployment uses the bundle.
   * Answers 'deleted', 'absent' or 'in-use'.
   */
  async delete(id: string): Promise<'deleted' | 'absent' | 'in-use'> {
    return this.sql.begin(async (tx) => {
      const [row] = await tx`select id from bundles where id = ${id} for update`;
      if (!row) return 'absent';
      const [used] = await tx`select 1 from deployments where bundle_id = ${id} and status = 'running' limit 1`;
      if (used) return 'in-use';
      await tx`delete from bundles where id = ${id}`;
      return 'deleted';
    });
  }

}
