import { EXECUTION_STATES } from '@kernex/shared';
import pino from 'pino';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';
import { migrate } from './migrate.js';

/**
 * The executions.state CHECK constraint (migration 009) and shared's EXECUTION_STATES
 * must list the same states: a state added on one side only would be refused by the
 * database, or stored and then unknown to every rule (DESIGN §5).
 */
describe('execution states in the database', () => {
  let db: TestDatabase;
  let sql: Sql;
  beforeAll(async () => {
    db = await createTestDatabase();
    sql = postgres(db.url, { max: 2, onnotice: () => {} });
    await migrate(sql, pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  it('allows exactly the states of EXECUTION_STATES in executions.state', async () => {
    const rows = await sql<{ def: string }[]>`
      select pg_get_constraintdef(c.oid) as def
      from pg_constraint c
      join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any(c.conkey)
      where c.conrelid = 'executions'::regclass and c.contype = 'c' and a.attname = 'state'`;
    expect(rows).toHaveLength(1);
    const allowed = [...rows[0]!.def.matchAll(/'([^']*)'::text/g)].map((m) => m[1]);
    expect([...allowed].sort()).toEqual([...EXECUTION_STATES].sort());
  });
});
