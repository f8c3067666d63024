import type { Sql } from 'postgres';

/** A stored enrollment token, without its secret. */
export interface EnrollmentTokenRow {
  id: string;
  tokenPrefix: string;
  uses: number;
  usesLeft: number;
  tags: string[];
  expiresAt: Date;
  createdAt: Date;
  revokedAt: Date | null;
}

const COLUMNS = 'id, token_prefix as "tokenPrefix", uses, uses_left as "usesLeft", tags, expires_at as "expiresAt", created_at as "createdAt", revoked_at as "revokedAt"';

/** SQL for `enrollment_tokens`; using a token happens in {@link DevicesStore.insert}'s transaction. */
export class EnrollmentTokensStore {
  constructor(private readonly sql: Sql) {}

  async insert(token: { tokenHash: string; tokenPrefix: string; uses: number; expiresInS: number; tags: string[] }): Promise<EnrollmentTokenRow> {
    const [row] = await this.sql<EnrollmentTokenRow[]>`
      insert into enrollment_tokens (token_hash, token_prefix, uses, uses_left, tags, expires_at)
      values (${token.tokenHash}, ${token.tokenPrefix}, ${token.uses}, ${token.uses}, ${this.sql.array(token.tags)},
              now() + make_interval(secs => ${token.expiresInS}))
      returning ${this.sql.unsafe(COLUMNS)}`;
    return row!;
  }

  /** Newest first, paged by id of the last row seen. */
  async list(limit: number, afterId: string | undefined): Promise<EnrollmentTokenRow[]> {
    return this.sql<EnrollmentTokenRow[]>`
      select ${this.sql.unsafe(COLUMNS)} from enrollment_tokens
      where ${afterId ? this.sql`(created_at, id) < (select created_at, id from enrollment_tokens where id = ${afterId})` : this.sql`true`}
      order by created_at desc, id desc
      limit ${limit}`;
  }

  /** Revokes a token; undefined when there is no such token. Revoking twice keeps the first time. */
  async revoke(id: string): Promise<EnrollmentTokenRow | undefined> {
    const [row] = await this.sql<EnrollmentTokenRow[]>`
      update enrollment_tokens set revoked_at = coalesce(revoked_at, now())
      where id = ${id} returning ${this.sql.unsafe(COLUMNS)}`;
    return row;
  }
}
