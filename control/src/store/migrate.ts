import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Sql } from 'postgres';

/** Migrations ship as plain SQL beside the source; the same path works from src/ and dist/. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../src/migrations/', import.meta.url));

/** Any constant works; it only has to be the same for every Kernex server. */
const MIGRATION_LOCK = 0x6b65726e; // 'kern'

export interface Migration {
  id: number;
  name: string;
  file: string;
}

/** Lists `NNN_verb-noun.sql` files in order, refusing gaps and duplicates. */
export async function listMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  return files.map((file, index) => {
    const match = /^(\d{3})_([a-z0-9-]+)\.sql$/.exec(file);
    if (!match) throw new Error(`migration file '${file}' is not named NNN_verb-noun.sql`);
    const id = Number(match[1]);
    if (id !== index + 1) throw new Error(`migration '${file}' should be numbered ${index + 1}: numbers have no gaps`);
    return { id, name: match[2]!, file: path.join(dir, file) };
  });
}

/**
 * Applies each pending migration once, in its own transaction, holding a
 * transaction-scoped advisory lock so two servers starting together cannot
 * both apply one: the second waits, then finds it recorded and skips it.
 * Returns the ids it applied.
 */
export async function migrate(sql: Sql, log: Logger, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await listMigrations(dir);
  // Under the same lock: two servers creating the table at once collide on its row type otherwise.
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    // Looked up first: even `if not exists` needs CREATE on the schema, which a data-only role lacks (DESIGN §10).
    const [found] = await tx<{ t: string | null }[]>`select to_regclass('kernex_migrations')::text as t`;
    if (found?.t) return;
    await tx`
      create table kernex_migrations (
        id integer primary key,
        name text not null,
        applied_at timestamptz not null default now()
      )`;
  });

  const applied: number[] = [];
  for (const m of migrations) {
    const ran = await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
      const [done] = await tx`select 1 from kernex_migrations where id = ${m.id}`;
      if (done) return false;
      await tx.unsafe(await fs.readFile(m.file, 'utf8'));
      await tx`insert into kernex_migrations (id, name) values (${m.id}, ${m.name})`;
      return true;
    });
    if (ran) {
      applied.push(m.id);
      log.info({ migration: `${String(m.id).padStart(3, '0')}_${m.name}` }, 'migration applied');
    }
  }
  return applied;
}
