import type { Sql } from 'postgres';

/** History retention (executions of ended deployments, audit log): deletes in bounded batches. */
export class HistoryStore {
  constructor(private readonly sql: Sql) {}

  /**
   * Deletes up to `batch` deployments that have ended (anything but `running`)
   * and have not changed since `before`; their executions go with them
   * (`on delete cascade`). Answers how many deployments were deleted.
   */
  async pruneEndedDeployments(before: Date, batch: number): Promise<number> {
    const result = await this.sql`
      delete from deployments where id in (
        select id from deployments where status <> 'running' and updated_at < ${before} order by updated_at limit ${batch})`;
    return result.count;
  }

  /** Deletes up to `batch` audit entries older than `before`. */
  async pruneAudit(before: Date, batch: number): Promise<number> {
    const result = await this.sql`
      delete from audit_log where id in (
        select id from audit_log where at < ${before} order by id limit ${batch})`;
    return result.count;
  }
}
