import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { WriteInterrupted, isStalled, writeIsolating } from './batch-writer.js';

/** What PostgreSQL answers for `\u0000` in a jsonb value (SQLSTATE 22P05). */
const refusal = (): Error => new (postgres.PostgresError as unknown as new (x: object) => Error)({ message: 'unsupported Unicode escape sequence', code: '22P05' });

/** A store that refuses any batch holding a negative number, as PostgreSQL refuses a whole statement for one row. */
function refusingStore(opts: { awayAfter?: number } = {}) {
  const written: number[][] = [];
  let calls = 0;
  return {
    written,
    get calls() {
      return calls;
    },
    async write(part: number[]): Promise<void> {
      calls++;
      if (opts.awayAfter !== undefined && written.length >= opts.awayAfter) throw Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' });
      if (part.some((n) => n < 0)) throw refusal();
      written.push(part);
    },
  };
}

describe('writeIsolating', () => {
  it('sets each refused row apart and writes every other row, in order', async () => {
    const store = refusingStore();
    const refused: number[] = [];
    await writeIsolating([1, 2, -3, 4, 5, 6, -7, 8], (p) => store.write(p), (n) => refused.push(n));
    expect(refused).toEqual([-3, -7]);
    expect(store.written.flat()).toEqual([1, 2, 4, 5, 6, 8]);
  });

  it('writes a batch without a bad row in one statement', async () => {
    const store = refusingStore();
    await writeIsolating([1, 2, 3], (p) => store.write(p), () => expect.unreachable());
    expect(store.calls).toBe(1);
  });

  it('stops at a connection error and lists what is left, without calling it refused', async () => {
    const store = refusingStore({ awayAfter: 1 });
    const refused: number[] = [];
    const err = await writeIsolating([1, 2, -3, 4], (p) => store.write(p), (n) => refused.push(n)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WriteInterrupted);
    expect(store.written.flat()).toEqual([1, 2]);
    expect((err as WriteInterrupted<number>).unwritten).toEqual([-3, 4]);
    expect(refused).toEqual([]);
  });
});

describe('isStalled', () => {
  it('is stalled only with work waiting, and then when failing or when the oldest item is too old', () => {
    expect(isStalled({ backlog: 0, oldestAt: undefined, failing: true }, 1000, 10_000)).toBe(false);
    expect(isStalled({ backlog: 1, oldestAt: 9_500, failing: true }, 1000, 10_000)).toBe(true);
    expect(isStalled({ backlog: 1, oldestAt: 9_500, failing: false }, 1000, 10_000)).toBe(false);
    expect(isStalled({ backlog: 1, oldestAt: 8_000, failing: false }, 1000, 10_000)).toBe(true);
  });
});
