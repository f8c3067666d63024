import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Sql, TransactionSql } from 'postgres';
import { StartupError } from '../errors.js';

/** Migrations ship as plain SQL beside the source; the same path works from src/ and dist/. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../src/migrations/', import.meta.url));

/** Any constant works; it only has to be the same for every Kernex server. */
const MIGRATION_LOCK = 0x6b65726e; // 'kern'

export interface Migration {
  id: number;
  name: string;
  file: string;
  /** SHA-256 (hex) of the file's bytes, recorded when it is applied. */
  checksum: string;
}

/** `NNN_name.sql`, as messages show a migration. */
const fileName = (id: number, name: string): string => `${String(id).padStart(3, '0')}_${name}.sql`;

/** Lists `NNN_verb-noun.sql` files in order, refusing gaps and duplicates. */
export async function listMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  return Promise.all(
    files.map(async (file, index) => {
      const match = /^(\d{3})_([a-z0-9-]+)\.sql$/.exec(file);
      if (!match) throw new StartupError(`migration file '${file}' is not named NNN_verb-noun.sql`);
      const id = Number(match[1]);
      if (id !== index + 1) throw new StartupError(`migration '${file}' should be numbered ${index + 1}: numbers have no gaps`);
      const full = path.join(dir, file);
      const checksum = createHash('sha256').update(await fs.readFile(full)).digest('hex');
      return { id, name: match[2]!, file: full, checksum };
    }),
  );
}

/**
 * What earlier versions of Kernex recorded before migrations carried a
 * checksum (bookkeeping `kernex_migrations (id, name, applied_at)`), matched by
 * number only. Files were renumbered on main then: numbers 003-009 were
 * placeholders for a while (`reserve-number`, `select 1`: they created
 * nothing), and these migrations were applied under other numbers first. A
 * database made by those versions is translated to today's numbering once.
 */
const PLACEHOLDER = 'reserve-number';
const RENUMBERED: ReadonlyArray<{ name: string; from: number; to: number }> = [
  { name: 'add-device-telemetry-columns', from: 11, to: 5 },
  { name: 'create-device-telemetry', from: 12, to: 6 },
  { name: 'create-bundles', from: 11, to: 7 },
  { name: 'create-deployments', from: 12, to: 8 },
  { name: 'create-executions', from: 13, to: 9 },
];

type Tx = TransactionSql;

/**
 * Brings the bookkeeping of earlier versions up to date: adds the checksum
 * column, drops the placeholder rows, moves renumbered migrations to their
 * number of today, and records today's checksum for each row (those versions
 * kept none; every renumbering left the file's content as it was).
 */
async function upgradeBookkeeping(tx: Tx, migrations: Migration[], log: Logger): Promise<void> {
  // Looked up first: ALTER needs the owner, and a data-only role runs this too (DESIGN §10).
  const [column] = await tx`select 1 from pg_attribute where attrelid = 'kernex_migrations'::regclass and attname = 'checksum' and not attisdropped`;
  if (!column) await tx`alter table kernex_migrations add column checksum text`;
  const legacy = await tx<{ id: number; name: string }[]>`select id, name from kernex_migrations where checksum is null order by id`;
  if (legacy.length === 0) return;
  const byId = new Map(migrations.map((m) => [m.id, m]));
  for (const row of legacy) {
    if (byId.get(row.id)?.name === row.name) continue;
    if (row.name === PLACEHOLDER) {
      await tx`delete from kernex_migrations where id = ${row.id} and checksum is null`;
      log.info({ migration: fileName(row.id, row.name) }, 'placeholder migration record dropped');
    }
  }
  for (const row of legacy) {
    const move = RENUMBERED.find((r) => r.from === row.id && r.name === row.name);
    if (!move || byId.get(row.id)?.name === row.name) continue;
    const [taken] = await tx`select name from kernex_migrations where id = ${move.to}`;
    if (taken) continue; // left for the check below, which names both
    await tx`update kernex_migrations set id = ${move.to} where id = ${row.id}`;
    log.info({ from: fileName(row.id, row.name), to: fileName(move.to, row.name) }, 'migration record renumbered');
  }
  for (const m of migrations) {
    await tx`update kernex_migrations set checksum = ${m.checksum} where id = ${m.id} and name = ${m.name} and checksum is null`;
  }
}

/** Refuses a database whose record does not match the files: a renamed, edited or unknown migration. */
async function checkRecorded(tx: Tx, migrations: Migration[]): Promise<void> {
  const byId = new Map(migrations.map((m) => [m.id, m]));
  const rows = await tx<{ id: number; name: string; checksum: string | null }[]>`select id, name, checksum from kernex_migrations order by id`;
  for (const row of rows) {
    const recorded = fileName(row.id, row.name);
    const m = byId.get(row.id);
    if (!m) {
      throw new StartupError(`migration ${recorded} is recorded in the database but this server has no such file (a database of a newer or another Kernex?)`);
    }
    if (m.name !== row.name) {
      throw new StartupError(`migration ${recorded} is recorded in the database but the file of that number is ${fileName(m.id, m.name)}`);
    }
    if (row.checksum !== m.checksum) {
      throw new StartupError(`migration ${recorded} was edited after it was applied (its checksum differs from the recorded one)`);
    }
  }
}

/**
 * Applies each pending migration once, in its own transaction, holding a
 * transaction-scoped advisory lock so two servers starting together cannot
 * both apply one: the second waits, then finds it recorded and skips it.
 * Every migration is recorded by number, name and checksum; a record that does
 * not match its file stops the start with one line naming it (DESIGN §1).
 * Returns the ids it applied.
 */
export async function migrate(sql: Sql, log: Logger, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await listMigrations(dir);
  // Under the same lock: two servers creating the table at once collide on its row type otherwise.
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    // Looked up first: even `if not exists` needs CREATE on the schema, which a data-only role lacks (DESIGN §10).
    const [found] = await tx<{ t: string | null }[]>`select to_regclass('kernex_migrations')::text as t`;
    if (!found?.t) await tx`
      create table kernex_migrations (
        id integer primary key,
        name text not null,
        applied_at timestamptz not null default now(),
        checksum text
      )`;
    await upgradeBookkeeping(tx, migrations, log);
    await checkRecorded(tx, migrations);
  });

  const applied: number[] = [];
  for (const m of migrations) {
    const ran = await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
      const [done] = await tx<{ name: string; checksum: string | null }[]>`select name, checksum from kernex_migrations where id = ${m.id}`;
      if (done) {
        if (done.name !== m.name || done.checksum !== m.checksum) await checkRecorded(tx, migrations);
        return false;
      }
      await tx.unsafe(await fs.readFile(m.file, 'utf8'));
      await tx`insert into kernex_migrations (id, name, checksum) values (${m.id}, ${m.name}, ${m.checksum})`;
      return true;
    });
    if (ran) {
      applied.push(m.id);
      log.info({ migration: fileName(m.id, m.name) }, 'migration applied');
    }
  }
  return applied;
}
