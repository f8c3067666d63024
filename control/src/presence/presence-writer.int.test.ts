import { once } from 'node:events';
import pino from 'pino';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevicesStore } from '../store/devices.pg.js';
import { migrate } from '../store/migrate.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';
import { PresenceWriter } from './presence-writer.js';

const log = pino({ level: 'silent' });
const ids = ['a'.repeat(24), 'b'.repeat(24), 'c'.repeat(24)];

describe('PresenceWriter', () => {
  let db: TestDatabase;
  let sql: Sql;
  let store: DevicesStore;
  beforeAll(async () => {
    db = await createTestDatabase();
    sql = postgres(db.url, { max: 2, onnotice: () => {} });
    await migrate(sql, log);
    store = new DevicesStore(sql);
    for (const id of ids) await store.insert({ id, publicKey: 'k', name: undefined, hardware: undefined, tokenHash: undefined });
  });
  afterAll(async () => {
    await sql.end();
    await db.drop();
  });

  it('coalesces changes per device and writes them in one statement, the last change winning', async () => {
    const writer = new PresenceWriter(store, log, { intervalMs: 60_000 });
    const flushed: number[] = [];
    writer.on('flushed', (n) => flushed.push(n));
    const t = new Date('2030-01-01T00:00:00Z');
    writer.record(ids[0]!, true, t);
    writer.record(ids[1]!, true, t);
    writer.record(ids[0]!, false, new Date(t.getTime() + 1000));
    await writer.flush();
    expect(flushed).toEqual([2]);
    expect(await store.get(ids[0]!)).toMatchObject({ online: false, lastSeenAt: new Date(t.getTime() + 1000) });
    expect(await store.get(ids[1]!)).toMatchObject({ online: true, lastSeenAt: t });
    await writer.close();
  });

  it('writes at once when maxBatch devices changed, without waiting for the interval', async () => {
    const writer = new PresenceWriter(store, log, { intervalMs: 60_000, maxBatch: 3 });
    const written = once(writer, 'flushed');
    for (const id of ids) writer.record(id, true, new Date());
    expect(await written).toEqual([3]);
    await writer.close();
  });

  it('writes after the interval when fewer changed', async () => {
    const writer = new PresenceWriter(store, log, { intervalMs: 20 });
    const written = once(writer, 'flushed');
    writer.record(ids[2]!, false, new Date());
    expect(await written).toEqual([1]);
    expect((await store.get(ids[2]!))?.online).toBe(false);
    await writer.close();
  });
});
