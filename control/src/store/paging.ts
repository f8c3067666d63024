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

/** Opaque cursor: base64url of the last row's (created_at, id). */
export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify([key.at, key.id])).toString('base64url');
}

/** The key in a cursor, or undefined when the cursor is not one of ours. */
export function decodeCursor(cursor: string): CursorKey | undefined {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string') return undefined;
    if (Number.isNaN(Date.parse(v[0]))) return undefined;
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
