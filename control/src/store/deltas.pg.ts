import type { Sql, TransactionSql } from 'postgres';

type Db = Sql | TransactionSql;

/** A bundle's signed file index (DESIGN §4). */
export interface IndexRow {
  bundleId: string;
  text: string;
  sha256: string;
  signature: string;
}

/** A delta A→B as stored. */
export interface DeltaRow {
  fromBundleId: string;
  toBundleId: string;
  /** Version of A (joined from bundles). */
  fromVersion: string;
  blobKey: string;
  sha256: string;
  size: number;
  files: number;
}

const toDelta = (r: Record<string, any>): DeltaRow => ({
  fromBundleId: r.from_bundle_id,
  toBundleId: r.to_bundle_id,
  fromVersion: r.from_version,
  blobKey: r.blob_key,
  sha256: r.sha256,
  size: Number(r.size),
  files: r.files,
});

/** File indexes and deltas (DESIGN §4 "Delta transfer"). */
export class DeltasStore {
  constructor(readonly sql: Sql) {}

  async insertIndex(db: Db, i: IndexRow): Promise<void> {
    await db`insert into bundle_indexes (bundle_id, text, sha256, signature) values (${i.bundleId}, ${i.text}, ${i.sha256}, ${i.signature}) on conflict do nothing`;
  }

  async index(db: Db, bundleId: string): Promise<IndexRow | undefined> {
    const [r] = await db`select * from bundle_indexes where bundle_id = ${bundleId}`;
    return r ? { bundleId: r.bundle_id, text: r.text, sha256: r.sha256, signature: r.signature } : undefined;
  }

  /** The bundle of `name` at `version`, when it exists and has an index. */
  async indexedBundle(db: Db, name: string, version: string): Promise<string | undefined> {
    const [r] = await db`select b.id from bundles b join bundle_indexes i on i.bundle_id = b.id where b.name = ${name} and b.version = ${version}`;
    return r?.id as string | undefined;
  }

  async delta(db: Db, fromBundleId: string, toBundleId: string): Promise<DeltaRow | undefined> {
    const [r] = await db`
      select d.*, b.version as from_version from bundle_deltas d join bundles b on b.id = d.from_bundle_id
      where d.from_bundle_id = ${fromBundleId} and d.to_bundle_id = ${toBundleId}`;
    return r ? toDelta(r) : undefined;
  }

  /** Every delta made to `toBundleId`, by the version it starts from. */
  async deltasTo(db: Db, toBundleId: string): Promise<Map<string, DeltaRow>> {
    const rows = await db`
      select d.*, b.version as from_version from bundle_deltas d join bundles b on b.id = d.from_bundle_id
      where d.to_bundle_id = ${toBundleId}`;
    return new Map(rows.map((r) => [r.from_version as string, toDelta(r)]));
  }

  /** Records a delta; false when another server made it first (its row stays). */
  async insertDelta(db: Db, d: Omit<DeltaRow, 'fromVersion'>): Promise<boolean> {
    const rows = await db`
      insert into bundle_deltas (from_bundle_id, to_bundle_id, blob_key, sha256, size, files)
      values (${d.fromBundleId}, ${d.toBundleId}, ${d.blobKey}, ${d.sha256}, ${d.size}, ${d.files})
      on conflict do nothing returning 1`;
    return rows.length > 0;
  }

  /** Those of `keys` that a delta row still names (the orphan sweep). */
  async existingKeys(db: Db, keys: readonly string[]): Promise<string[]> {
    if (keys.length === 0) return [];
    const rows = await db`select blob_key from bundle_deltas where blob_key = any(${[...keys]}::text[])`;
    return rows.map((r) => r.blob_key as string);
  }

  /** What the server knows the devices have of bundle `name` (executions that succeeded, telemetry `b`): device → version. */
  async installedVersions(db: Db, deviceIds: readonly string[], name: string): Promise<Map<string, string>> {
    if (deviceIds.length === 0) return new Map();
    const rows = await db`select id, bundles ->> ${name} as v from devices where id = any(${[...deviceIds]}::text[]) and bundles ? ${name}`;
    return new Map(rows.map((r) => [r.id as string, r.v as string]));
  }

  /** Distinct versions of `name` that target devices have, with their bundle ids (those with an index). */
  async sourcesAmong(db: Db, deviceIds: readonly string[], name: string): Promise<Array<{ bundleId: string; version: string }>> {
    if (deviceIds.length === 0) return [];
    const rows = await db`
      select distinct b.id, b.version from devices v
      join bundles b on b.name = ${name} and b.version = v.bundles ->> ${name}
      join bundle_indexes i on i.bundle_id = b.id
      where v.id = any(${[...deviceIds]}::text[])`;
    return rows.map((r) => ({ bundleId: r.id as string, version: r.version as string }));
  }
}
