import type { Logger } from 'pino';
import type { ServerConfig } from '../config.js';
import { connectDatabase, type Sql } from '../store/database.js';
import { runningEmbeddedUrl, startEmbeddedPostgres, type EmbeddedDatabase } from '../store/embedded-postgres.js';

/** The server's database, opened by an operations command (backup, restore, migrate). */
export interface OpsDatabase {
  sql: Sql;
  /** Where it is, for messages: `DATABASE_URL` or the embedded cluster's directory. */
  where: string;
  /** True when this command started the embedded PostgreSQL itself (the server was stopped). */
  startedEmbedded: boolean;
  close(): Promise<void>;
}

/**
 * Opens the database with the server's own settings (DESIGN §10): `DATABASE_URL`, or the
 * embedded PostgreSQL of `KERNEX_DATA_DIR`: the running server's (found through its
 * postmaster.pid), or started here for the command when the server is stopped.
 */
export async function openOpsDatabase(config: Readonly<ServerConfig>, log: Logger): Promise<OpsDatabase> {
  if (config.databaseUrl) {
    const sql = await connectDatabase(config.databaseUrl, log, 2);
    return { sql, where: 'DATABASE_URL', startedEmbedded: false, close: () => sql.end({ timeout: 5 }) };
  }
  const where = `the embedded PostgreSQL in ${config.dataDir}`;
  const running = await runningEmbeddedUrl(config.dataDir);
  if (running) {
    const sql = await connectDatabase(running, log, 2);
    return { sql, where, startedEmbedded: false, close: () => sql.end({ timeout: 5 }) };
  }
  const embedded: EmbeddedDatabase = await startEmbeddedPostgres(config.dataDir, 0, log);
  try {
    const sql = await connectDatabase(embedded.url, log, 2);
    return {
      sql,
      where,
      startedEmbedded: true,
      async close() {
        await sql.end({ timeout: 5 });
        await embedded.stop();
      },
    };
  } catch (err) {
    await embedded.stop();
    throw err;
  }
}
