import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

const CHILD = fileURLToPath(new URL('./fixtures/terminate-in-transaction.mjs', import.meta.url));
const ROUNDS = 30;

/**
 * postgres.js 3.4.9 as patched in patches/postgres+3.4.9.patch (porsager/postgres#1066, #1154,
 * #1208): a backend that ends mid-transaction must fail that transaction, not the process.
 */
describe('the PostgreSQL driver when a transaction loses its backend', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('rejects the transaction with CONNECTION_CLOSED, serves the next query and ends, every round', async () => {
    const { code, signal, stdout, stderr } = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CHILD, db.url, String(ROUNDS)], { cwd: fileURLToPath(new URL('.', import.meta.url)) }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, signal: err ? ((err as { signal?: string }).signal ?? null) : null, stdout, stderr }),
      );
    });
    expect({ code, signal, stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    const result = JSON.parse(stdout) as { outcomes: string[]; next: number[] };
    expect(result.outcomes).toEqual(Array(ROUNDS).fill('CONNECTION_CLOSED'));
    expect(result.next).toEqual([...Array(ROUNDS).keys()]);
  });
});
