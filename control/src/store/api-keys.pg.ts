import type { Sql } from 'postgres';
import type { Role } from '../auth/roles.js';

/** A stored API key, without its secret. */
export interface ApiKeyRow {
  id: string;
  name: string;
  role: Role;
  keyPrefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/** SQL for `api_keys`; the only place that touches the table. */
export class ApiKeysStore {
  constructor(private readonly sql: Sql) {}

  async insert(key: { name: string; role: Role; keyHash: string; keyPrefix: string }): Promise<ApiKeyRow> {
    const [row] = await this.sql<ApiKeyRow[]>`
      insert into api_keys (name, role, key_hash, key_prefix)
      values (${key.name}, ${key.role}, ${key.keyHash}, ${key.keyPrefix})
      on conflict (key_hash) do update set revoked_at = null
      returning id, name, role, key_prefix as "keyPrefix", created_at as "createdAt",
                last_used_at as "lastUsedAt", revoked_at as "revokedAt"`;
    return row!;
  }

  async findActiveByHash(keyHash: string): Promise<ApiKeyRow | undefined> {
    const [row] = await this.sql<ApiKeyRow[]>`
      select id, name, role, key_prefix as "keyPrefix", created_at as "createdAt",
             last_used_at as "lastUsedAt", revoked_at as "revokedAt"
      from api_keys where key_hash = ${keyHash} and revoked_at is null`;
    return row;
  }

  /**
   * Oldest first, after the key `after`; fetches `limit + 1` rows for paging.
   * Times compare at millisecond precision, as the cursor (a JS date) carries them.
   */
  async list(limit: number, after?: { createdAt: string; id: string }): Promise<ApiKeyRow[]> {
    const sql = this.sql;
    return sql<ApiKeyRow[]>`
      select id, name, role, key_prefix as "keyPrefix", created_at as "createdAt",
             last_used_at as "lastUsedAt", revoked_at as "revokedAt"
      from api_keys
      ${after ? sql`where (date_trunc('milliseconds', created_at), id) > (${after.createdAt}::timestamptz, ${after.id}::uuid)` : sql``}
      order by date_trunc('milliseconds', created_at), id
      limit ${limit + 1}`;
  }

  async findById(id: string): Promise<ApiKeyRow | undefined> {
    const [row] = await this.sql<ApiKeyRow[]>`
      select id, name, role, key_prefix as "keyPrefix", created_at as "createdAt",
             last_used_at as "lastUsedAt", revoked_at as "revokedAt"
      from api_keys where id = ${id}`;
    return row;
  }

  /**
   * Revokes a key unless it is the last active admin key (which would lock
   * every operator out); the check and the update are one statement, so two
   * concurrent revocations cannot both pass it. Answers what happened.
   */
  async revoke(id: string): Promise<{ row?: ApiKeyRow; refused?: 'last-admin' }> {
    return this.sql.begin(async (tx) => {
      // Serialise revocations so "is another admin left?" stays true until commit.
      await tx`select pg_advisory_xact_lock(${0x6b786b72})`;
      const [key] = await tx<{ role: string; revokedAt: Date | null }[]>`
        select role, revoked_at as "revokedAt" from api_keys where id = ${id}`;
      if (!key) return {};
      if (key.role === 'admin' && key.revokedAt === null) {
        const [other] = await tx`select 1 from api_keys where role = 'admin' and revoked_at is null and id <> ${id} limit 1`;
        if (!other) return { refused: 'last-admin' as const };
      }
      const [row] = await tx<ApiKeyRow[]>`
        update api_keys set revoked_at = coalesce(revoked_at, now()) where id = ${id}
        returning id, name, role, key_prefix as "keyPrefix", created_at as "createdAt",
                  last_used_at as "lastUsedAt", revoked_at as "revokedAt"`;
      return { row: row! };
    });
  }

  /** Notes a use, at most once a minute per key, so busy keys do not write on every request. */
  async touch(id: string): Promise<void> {
    await this.sql`
      update api_keys set last_used_at = now()
      where id = ${id} and (last_used_at is null or last_used_at < now() - interval '1 minute')`;
  }

  async countActive(): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`select count(*)::int as n from api_keys where revoked_at is null`;
    return row!.n;
  }
}
