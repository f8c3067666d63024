import postgres, { type Sql } from 'postgres';
import type { Logger } from 'pino';
import { StartupError } from '../errors.js';

export type { Sql } from 'postgres';

/** Where a URL points, without its password, for log lines and errors. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/**
 * Opens the pool and checks that the database answers, so an unreachable
 * `DATABASE_URL` ends the start with one clear line instead of a hang.
 */
export async function connectDatabase(url: string, log: Logger): Promise<Sql> {
  const sql = postgres(url, {
    max: 10,
    connect_timeout: 5,
    idle_timeout: 60,
    onnotice: (n) => log.debug({ notice: n.message }, 'postgres notice'),
  });
  try {
    await sql`select 1`;
  } catch (err) {
    await sql.end({ timeout: 1 }).catch(() => {});
    const reason = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
    throw new StartupError(`cannot reach the database at ${describeUrl(url)}: ${reason}`, { cause: err });
  }
  return sql;
}

/** True when the database answers within `timeoutMs`; used by `/readyz`. */
export async function pingDatabase(sql: Sql, timeoutMs = 2000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([sql`select 1`.then(() => true), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * True when PostgreSQL refused what a statement carried, not the connection:
 * a data exception (class 22: NUL in text or jsonb, a lone surrogate, a date
 * out of range), an integrity violation (23) or a program limit (54). Such a
 * statement fails the same way however often it is retried, so batched
 * writers split the batch to find the row instead of retrying it.
 */
export function isRowRefusal(err: unknown): boolean {
  if (!(err instanceof postgres.PostgresError)) return false;
  return /^(22|23|54)/.test(err.code);
}
