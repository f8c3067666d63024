import type { Sql } from 'postgres';

/** Who did something: an API key, a device, or nobody that proved who it was. */
export type ActorKind = 'apiKey' | 'device' | 'anonymous';

/** One audit entry as stored. */
export interface AuditRow {
  id: string;
  at: Date;
  actorKind: ActorKind;
  actorId: string | null;
  actorName: string | null;
  method: string;
  route: string;
  targetId: string | null;
  statusCode: number;
  result: 'success' | 'failure';
  errorCode: string | null;
  address: string | null;
  requestId: string | null;
}

export type NewAuditEntry = Omit<AuditRow, 'id' | 'at'>;

/** Filters of the audit list; `beforeId` is the paging cursor (newest first). */
export interface AuditQuery {
  limit: number;
  beforeId?: string;
  actorId?: string;
  result?: 'success' | 'failure';
}

/** SQL for `audit_log`; the only place that touches the table. */
export class AuditStore {
  constructor(private readonly sql: Sql) {}

  async insert(e: NewAuditEntry): Promise<void> {
    await this.sql`
      insert into audit_log (actor_kind, actor_id, actor_name, method, route, target_id, status_code, result, error_code, address, request_id)
      values (${e.actorKind}, ${e.actorId}, ${e.actorName}, ${e.method}, ${e.route}, ${e.targetId}, ${e.statusCode},
              ${e.result}, ${e.errorCode}, ${e.address}, ${e.requestId})`;
  }

  /** Newest first; fetches `limit + 1` rows so the caller can tell whether a next page exists. */
  async list(q: AuditQuery): Promise<AuditRow[]> {
    const sql = this.sql;
    return sql<AuditRow[]>`
      select id::text, at, actor_kind as "actorKind", actor_id as "actorId", actor_name as "actorName", method, route,
             target_id as "targetId", status_code as "statusCode", result, error_code as "errorCode", address,
             request_id as "requestId"
      from audit_log
      where true
        ${q.beforeId ? sql`and id < ${q.beforeId}` : sql``}
        ${q.actorId ? sql`and actor_id = ${q.actorId}` : sql``}
        ${q.result ? sql`and result = ${q.result}` : sql``}
      order by audit_log.id desc
      limit ${q.limit + 1}`;
  }
}
