import type { Logger } from 'pino';
import postgres from 'postgres';
import { connectOptions } from './pg-url.js';

/** Any constant works; it only has to be the same for every Kernex server ('kxls'). */
const LIVE_SERVER_LOCK = 0x6b786c73;

/** How often the mark is checked (and taken again after a reconnect). */
const RENEW_MS = 5000;

/** This server's mark in the database that it is running, held on one reserved connection. */
export interface LiveServerMark {
  /** True when no other live server shared the database when this one started. */
  readonly alone: boolean;
  /** Lets other servers start beside this one; called once the start-up reset (if alone) is done. */
  admitOthers(): Promise<void>;
  /** Drops the mark (at shutdown). */
  release(): Promise<void>;
}

/**
 * Marks this server live on its database: every running server holds a shared
 * session-level advisory lock for its whole life. A starting server first tries
 * the same lock exclusively: it gets it only when no other server is running
 * on this database, and only then may it reset what a previous run left behind
 * (presence). The lock lives in the session, so a killed server's mark goes
 * with its connection.
 */
export async function markLiveServer(url: string, log: Logger): Promise<LiveServerMark> {
  // Its own connection, never recycled (no idle timeout, no lifetime), so the lock lives as long as the server.
  const { url: plain, ssl } = await connectOptions(url); // sslmode/sslrootcert, as the pool (store/database.ts)
  const conn = postgres(plain, { max: 1, idle_timeout: 0, max_lifetime: 0, connect_timeout: 5, onnotice: () => {}, ...(ssl === undefined ? {} : { ssl }) });
  try {
    const [row] = await conn<{ alone: boolean }[]>`select pg_try_advisory_lock(${LIVE_SERVER_LOCK}) as alone`;
    const alone = row!.alone;
    // Shared from the start: a server starting meanwhile finds this one live either way.
    await conn`select pg_advisory_lock_shared(${LIVE_SERVER_LOCK})`;
    let admitted = !alone;
    // A lost connection (a database restart) drops the lock with it: check it now and then, and take it again.
    let failing = false;
    const renew = setInterval(() => {
      void (async () => {
        const [held] = await conn<{ held: boolean }[]>`
          select exists(select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()
                          and objid = ${LIVE_SERVER_LOCK} and mode = 'ShareLock' and granted) as held`;
        if (!held!.held) {
          await conn`select pg_advisory_lock_shared(${LIVE_SERVER_LOCK})`;
          log.info('live-server mark taken again after a lost database connection');
        }
        failing = false;
      })().catch((err: unknown) => {
        if (!failing) log.warn({ err }, 'live-server mark check failed; retrying');
        failing = true;
      });
    }, RENEW_MS);
    renew.unref();
    return {
      alone,
      async admitOthers() {
        if (admitted) return;
        admitted = true;
        await conn`select pg_advisory_unlock(${LIVE_SERVER_LOCK})`;
      },
      async release() {
        clearInterval(renew);
        // Ending the session drops its locks; no query, so a dead connection cannot hold up the shutdown.
        await conn.end({ timeout: 1 }).catch((err: unknown) => log.warn({ err }, 'live-server mark release failed'));
      },
    };
  } catch (err) {
    await conn.end({ timeout: 1 }).catch(() => {});
    throw err;
  }
}
