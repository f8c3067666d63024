import pino from 'pino';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';
import { DevicesStore } from './devices.pg.js';
import { migrate } from './migrate.js';

/**
 * Presence written by two nodes in batches, in an order the database does not choose (DESIGN §8):
 * after node A's lease lapsed, A writes its sessions online again ("reassert"); a device that
 * meanwhile connected to node B must end on B, whichever of the two writes lands first.
 */
describe('presence of a device between two nodes', () => {
  let db: TestDatabase;
  let sql: Sql;
  const nodeA = { id: 'presence-a', generation: 1 };
  const nodeB = { id: 'presence-b', generation: 1 };
  let asA: DevicesStore;
  let asB: DevicesStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    sql = postgres(db.url, { max: 2, onnotice: () => {} });
    await migrate(sql, pino({ level: 'silent' }));
    asA = new DevicesStore(sql);
    asA.writeAsNode(nodeA);
    asB = new DevicesStore(sql);
    asB.writeAsNode(nodeB);
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  const where = async (id: string): Promise<{ online: boolean; node_id: string | null }> =>
    (await sql<Array<{ online: boolean; node_id: string | null }>>`select online, node_id from devices where id = ${id}`)[0]!;

  it('ends online on the node it connected to after its old node lapsed, when the old node’s reassert is written first', async () => {
    const id = 'd'.repeat(24);
    await asA.insert({ id, publicKey: 'not used here', name: undefined, hardware: undefined, tokenHash: undefined });
    const t0 = new Date(Date.now() - 10_000);
    await asA.writePresence([{ deviceId: id, online: true, at: t0 }]);
    // A's lease lapsed; the device (its socket on A half-open) connected to B at tB; A renews and
    // reasserts at tR > tB, and its write reaches the database before B's batch.
    const tB = new Date(t0.getTime() + 5_000);
    const tR = new Date(t0.getTime() + 6_000);
    await asA.writePresence([{ deviceId: id, online: true, at: tR, reassert: true }]);
    await asB.writePresence([{ deviceId: id, online: true, at: tB }]);
    expect(await where(id)).toEqual({ online: true, node_id: nodeB.id });
    // A finally drops the half-open socket: the device stays online on B.
    await asA.writePresence([{ deviceId: id, online: false, at: new Date(tR.getTime() + 30_000) }]);
    expect(await where(id)).toEqual({ online: true, node_id: nodeB.id });
  });
});
