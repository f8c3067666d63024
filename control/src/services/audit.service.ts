import type { Logger } from 'pino';
import { decodeCursor, toPage, type Page } from '../paging.js';
import type { AuditQuery, AuditRow, AuditStore, NewAuditEntry } from '../store/audit.pg.js';

/** An audit entry as the API answers it. */
export interface AuditEntry {
  id: string;
  at: string;
  actor: { kind: AuditRow['actorKind']; id: string | null; name: string | null };
  action: string;
  method: string;
  route: string;
  targetId: string | null;
  statusCode: number;
  result: AuditRow['result'];
  errorCode: string | null;
  address: string | null;
  requestId: string | null;
}

const isCursor = (v: unknown): v is { id: string } =>
  typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'string' && /^\d{1,18}$/.test((v as { id: string }).id);

function toEntry(r: AuditRow): AuditEntry {
  return {
    id: r.id,
    at: r.at.toISOString(),
    actor: { kind: r.actorKind, id: r.actorId, name: r.actorName },
    action: `${r.method} ${r.route}`,
    method: r.method,
    route: r.route,
    targetId: r.targetId,
    statusCode: r.statusCode,
    result: r.result,
    errorCode: r.errorCode,
    address: r.address,
    requestId: r.requestId,
  };
}

/** The audit log (DESIGN §6): every change made through the API, newest first. */
export class AuditService {
  constructor(
    private readonly store: AuditStore,
    private readonly log: Logger,
  ) {}

  /**
   * Records one change. A failure to write is logged, not thrown: the change
   * itself has happened, and the caller is answering for it already.
   */
  async record(entry: NewAuditEntry): Promise<void> {
    try {
      await this.store.insert(entry);
    } catch (err) {
      this.log.error({ err, method: entry.method, route: entry.route, statusCode: entry.statusCode }, 'audit entry not written');
    }
  }

  async list(q: { limit: number; cursor?: string; actorId?: string; result?: AuditQuery['result'] }): Promise<Page<AuditEntry>> {
    const beforeId = q.cursor ? decodeCursor(q.cursor, isCursor).id : undefined;
    const rows = await this.store.list({ limit: q.limit, beforeId, actorId: q.actorId, result: q.result });
    return toPage(rows, q.limit, (r) => ({ id: r.id }), toEntry);
  }
}
