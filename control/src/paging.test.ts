import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, toPage } from './paging.js';

const isId = (v: unknown): v is { id: number } => typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'number';

describe('paging', () => {
  it('round-trips a cursor through an opaque base64url string', () => {
    const c = encodeCursor({ id: 42 });
    expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(c, isId)).toEqual({ id: 42 });
  });

  it('refuses a cursor it did not make, naming query.cursor', () => {
    expect(() => decodeCursor('not-base64-json', isId)).toThrow('query.cursor is not a cursor this server made');
    expect(() => decodeCursor(encodeCursor({ id: 'x' }), isId)).toThrow(/query.cursor/);
  });

  it('gives a next cursor only when a row beyond the limit was fetched', () => {
    const rows = [{ id: 3 }, { id: 2 }, { id: 1 }];
    const full = toPage(rows, 2, (r) => ({ id: r.id }), (r) => r.id);
    expect(full.items).toEqual([3, 2]);
    expect(decodeCursor(full.nextCursor!, isId)).toEqual({ id: 2 });
    expect(toPage(rows, 3, (r) => r, (r) => r.id)).toEqual({ items: [3, 2, 1], nextCursor: null });
  });
});
