import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import postgres, { type Sql } from 'postgres';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';
import { listMigrations, migrate } from './migrate.js';

const log = pino({ level: 'silent' });

describe('migrate', () => {
  let db: TestDatabase;
  let sql: Sql;
  beforeEach(async () => {
    db = await createTestDatabase();
    sql = postgres(db.url, { max: 4, onnotice: () => {} });
  });
  afterEach(async () => {
    await sql.end();
    await db.drop();
  });

  const schema = async (): Promise<unknown[]> =>
    [...(await sql`select table_name, column_name, data_type from information_schema.columns
        where table_schema = 'public' order by table_name, column_name`)];

  it('migrates an empty database to head and records every file', async () => {
    const all = await listMigrations();
    expect(await migrate(sql, log)).toEqual(all.map((m) => m.id));
    const rows = await sql`select id, name from kernex_migrations order by id`;
    expect(rows.map((r) => r.id)).toEqual(all.map((m) => m.id));
  });

  it('changes nothing when applied twice', async () => {
    await migrate(sql, log);
    const before = await schema();
    expect(await migrate(sql, log)).toEqual([]);
    expect(await schema()).toEqual(before);
  });

  it('applies each file once when two servers migrate at the same time', async () => {
    // Files that fail if run twice (plain CREATE TABLE), so a double apply cannot hide.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-mig-'));
    for (let i = 1; i <= 5; i++) {
      await fs.writeFile(path.join(dir, `00${i}_create-t${i}.sql`), `create table t${i} (id int); select pg_sleep(0.05);`);
    }
    const other = postgres(db.url, { max: 4, onnotice: () => {} });
    try {
      const [a, b] = await Promise.all([migrate(sql, log, dir), migrate(other, log, dir)]);
      expect([...a, ...b].sort()).toEqual([1, 2, 3, 4, 5]);
      const [row] = await sql<{ count: number }[]>`select count(*)::int as count from kernex_migrations`;
      expect(row?.count).toBe(5);
    } finally {
      await other.end();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a migration directory with a gap in its numbers', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-mig-'));
    await fs.writeFile(path.join(dir, '001_create-a.sql'), 'select 1');
    await fs.writeFile(path.join(dir, '003_create-c.sql'), 'select 1');
    await expect(listMigrations(dir)).rejects.toThrow(/numbered 2/);
    await fs.rm(dir, { recursive: true, force: true });
  });
});
