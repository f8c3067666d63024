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

  async countActive(): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`select count(*)::int as n from api_keys where revoked_at is null`;
    return row!.n;
  }
}
