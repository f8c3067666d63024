import type { Sql } from 'postgres';
import type { Role } from '../auth/roles.js';

/** A live console session with the key it was made from. */
export interface SessionRow {
  id: string;
  apiKeyId: string;
  keyName: string;
  role: Role;
  expiresAt: Date;
}

/** SQL for `console_sessions`; the only place that touches the table. */
export class SessionsStore {
  constructor(private readonly sql: Sql) {}

  async insert(s: { tokenHash: string; apiKeyId: string; expiresAt: Date }): Promise<{ id: string; expiresAt: Date }> {
    const [row] = await this.sql<{ id: string; expiresAt: Date }[]>`
      insert into console_sessions (token_hash, api_key_id, expires_at)
      values (${s.tokenHash}, ${s.apiKeyId}, ${s.expiresAt})
      returning id, expires_at as "expiresAt"`;
    return row!;
  }

  /** The session when it is not ended, not expired, and its key is not revoked. */
  async findLive(tokenHash: string): Promise<SessionRow | undefined> {
    const [row] = await this.sql<SessionRow[]>`
      select s.id, s.api_key_id as "apiKeyId", k.name as "keyName", k.role, s.expires_at as "expiresAt"
      from console_sessions s join api_keys k on k.id = s.api_key_id
      where s.token_hash = ${tokenHash} and s.ended_at is null and s.expires_at > now() and k.revoked_at is null`;
    return row;
  }

  async end(tokenHash: string): Promise<boolean> {
    const rows = await this.sql`update console_sessions set ended_at = now() where token_hash = ${tokenHash} and ended_at is null`;
    return rows.count > 0;
  }

  /** Drops sessions that ended or expired more than a day ago. */
  async prune(): Promise<number> {
    const rows = await this.sql`delete from console_sessions where coalesce(ended_at, expires_at) < now() - interval '1 day'`;
    return rows.count;
  }
}
