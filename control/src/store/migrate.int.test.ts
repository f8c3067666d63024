import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import postgres, { type Sql } from 'postgres';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StartupError } from '../errors.js';
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
  it('lists the migrations this server ships, in order', async () => {
    expect((await listMigrations()).map((m) => `${String(m.id).padStart(3, '0')}_${m.name}`)).toEqual([
      '001_create-settings',
      '002_create-api-keys',
      '003_create-enrollment-tokens',
      '004_create-devices',
      '005_add-device-telemetry-columns',
      '006_create-device-telemetry',
      '007_create-bundles',
      '008_create-deployments',
      '009_create-executions',
      '010_create-audit-log',
      '011_add-bundle-bookkeeping',
      '012_create-console-sessions',
      '013_add-delta-transfer',
      '014_create-nodes',
    ]);
  });

  it('stops with one line naming both when the recorded name of a number differs from its file', async () => {
    await migrate(sql, log);
    await sql`update kernex_migrations set name = 'create-gadgets' where id = 3`;
    const err = await migrate(sql, log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartupError);
    expect((err as Error).message).toBe(
      'migration 003_create-gadgets.sql is recorded in the database but the file of that number is 003_create-enrollment-tokens.sql',
    );
  });

  it('stops with one line naming it when an applied file was edited', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-mig-'));
    try {
      await fs.writeFile(path.join(dir, '001_create-a.sql'), 'create table a (id int);');
      await fs.writeFile(path.join(dir, '002_create-b.sql'), 'create table b (id int);');
      expect(await migrate(sql, log, dir)).toEqual([1, 2]);
      await fs.writeFile(path.join(dir, '002_create-b.sql'), 'create table b (id int, extra text);');
      await fs.writeFile(path.join(dir, '003_create-c.sql'), 'create table c (id int);');
      await expect(migrate(sql, log, dir)).rejects.toThrow(
        new StartupError('migration 002_create-b.sql was edited after it was applied (its checksum differs from the recorded one)'),
      );
      // Nothing after the refusal was applied.
      const [c] = await sql`select 1 from information_schema.tables where table_name = 'c'`;
      expect(c).toBeUndefined();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('stops when the database records a migration this server has no file for', async () => {
    await migrate(sql, log);
    await sql`insert into kernex_migrations (id, name, checksum) values (99, 'create-widgets', 'x')`;
    await expect(migrate(sql, log)).rejects.toThrow(
      new StartupError('migration 099_create-widgets.sql is recorded in the database but this server has no such file (a database of a newer or another Kernex?)'),
    );
  });

  /**
   * A database made by an earlier version: bookkeeping without checksums, and
   * the numbering main had then (`layout`: number → the name recorded, and the
   * file of today whose SQL that version ran; placeholders ran `select 1`).
   */
  async function legacyDatabase(layout: Array<[number, string]>): Promise<void> {
    await sql`create table kernex_migrations (id integer primary key, name text not null, applied_at timestamptz not null default now())`;
    const files = new Map((await listMigrations()).map((m) => [m.name, m.file]));
    for (const [id, name] of layout) {
      const file = files.get(name);
      await sql.unsafe(file ? await fs.readFile(file, 'utf8') : 'select 1'); // placeholders (and unknown names) created nothing
      await sql`insert into kernex_migrations (id, name) values (${id}, ${name})`;
    }
  }

  async function freshSchema(): Promise<unknown[]> {
    const other = await createTestDatabase();
    const osql = postgres(other.url, { max: 1, onnotice: () => {} });
    try {
      await migrate(osql, log);
      return [...(await osql`select table_name, column_name, data_type from information_schema.columns
        where table_schema = 'public' order by table_name, column_name`)];
    } finally {
      await osql.end();
      await other.drop();
    }
  }

  const recorded = async (): Promise<string[]> =>
    (await sql<{ id: number; name: string; ok: boolean }[]>`select id, name, checksum is not null as ok from kernex_migrations order by id`).map(
      (r) => `${r.id}:${r.name}:${r.ok ? 'checksum' : 'none'}`,
    );

  it('upgrades a database migrated before the renumbering and applies the files it skipped', async () => {
    // main at 5c2ed7b: 003-004 real, 005-009 placeholders, 010 audit, telemetry at 011-012.
    // A server of today matching by number alone took 007-009 as done and never created bundles.
    await legacyDatabase([
      [1, 'create-settings'],
      [2, 'create-api-keys'],
      [3, 'create-enrollment-tokens'],
      [4, 'create-devices'],
      [5, 'reserve-number'],
      [6, 'reserve-number'],
      [7, 'reserve-number'],
      [8, 'reserve-number'],
      [9, 'reserve-number'],
      [10, 'create-audit-log'],
      [11, 'add-device-telemetry-columns'],
      [12, 'create-device-telemetry'],
    ]);
    expect(await migrate(sql, log)).toEqual([7, 8, 9, 11, 12, 13, 14]);
    expect(await schema()).toEqual(await freshSchema());
    expect(await recorded()).toEqual([
      '1:create-settings:checksum',
      '2:create-api-keys:checksum',
      '3:create-enrollment-tokens:checksum',
      '4:create-devices:checksum',
      '5:add-device-telemetry-columns:checksum',
      '6:create-device-telemetry:checksum',
      '7:create-bundles:checksum',
      '8:create-deployments:checksum',
      '9:create-executions:checksum',
      '10:create-audit-log:checksum',
      '11:add-bundle-bookkeeping:checksum',
      '12:create-console-sessions:checksum',
      '13:add-delta-transfer:checksum',
      '14:create-nodes:checksum',
    ]);
    expect(await migrate(sql, log)).toEqual([]);
  });

  it('upgrades a database of the version with bundles at 011-013 without applying anything twice', async () => {
    // main at 31add9a: telemetry at 005-006, 007-009 placeholders, bundles, deployments, executions at 011-013.
    await legacyDatabase([
      [1, 'create-settings'],
      [2, 'create-api-keys'],
      [3, 'create-enrollment-tokens'],
      [4, 'create-devices'],
      [5, 'add-device-telemetry-columns'],
      [6, 'create-device-telemetry'],
      [7, 'reserve-number'],
      [8, 'reserve-number'],
      [9, 'reserve-number'],
      [10, 'create-audit-log'],
      [11, 'create-bundles'],
      [12, 'create-deployments'],
      [13, 'create-executions'],
    ]);
    expect(await migrate(sql, log)).toEqual([11, 12, 13, 14]);
    expect(await schema()).toEqual(await freshSchema());
    expect((await recorded()).every((r) => r.endsWith(':checksum'))).toBe(true);
    expect((await recorded()).map((r) => r.split(':')[1])).toEqual((await listMigrations()).map((m) => m.name));
  });

  it('stops naming both when an earlier version recorded a name this server does not know for that number', async () => {
    await legacyDatabase([
      [1, 'create-settings'],
      [2, 'create-gadgets'],
    ]);
    await expect(migrate(sql, log)).rejects.toThrow(
      new StartupError('migration 002_create-gadgets.sql is recorded in the database but the file of that number is 002_create-api-keys.sql'),
    );
  });
});
