/** Keyset paging for `{items, nextCursor}` lists (DESIGN §6): newest first, by (created_at, id). */

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Position after which the next page starts. */
export interface CursorKey {
  at: string;
  id: string;
}

/** A UUID as PostgreSQL's `uuid` type reads it. */
export const isUuid = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v);

/** An ISO 8601 instant in years 0001-9999, which `timestamptz` and every client hold (DESIGN §6). */
export function isStorableTime(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  const ms = Date.parse(v);
  return Number.isFinite(ms) && ms >= Date.parse('0001-01-01T00:00:00Z') && ms < Date.parse('9999-12-31T00:00:00Z');
}

/** Opaque cursor: base64url of the last row's (created_at, id). */
export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify([key.at, key.id])).toString('base64url');
}

/** The key in a cursor, or undefined when the cursor is not one of ours. */
export function decodeCursor(cursor: string): CursorKey | undefined {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    // Checked as the query will cast them, so a forged cursor is a 400, not a database error.
    if (!Array.isArray(v) || v.length !== 2 || !isStorableTime(v[0]) || !isUuid(v[1])) return undefined;
    return { at: v[0], id: v[1] };
  } catch {
    return undefined;
  }
}

/** Builds a page from `limit + 1` fetched rows. */
export function toPage<R, T>(rows: R[], limit: number, key: (r: R) => CursorKey, map: (r: R) => T): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept[kept.length - 1];
  return { items: kept.map(map), nextCursor: more && last ? encodeCursor(key(last)) : null };
}
