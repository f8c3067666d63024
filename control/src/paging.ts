import { DEVICE_ID_PATTERN } from '@kernex/shared';
import { Errors } from './errors.js';

/**
 * Paging for every list endpoint (DESIGN §6): `?limit=&cursor=` in, `{items, nextCursor}` out.
 * The one module for it: routes take the query schema and page schema from here, services
 * decode cursors, stores build pages. A cursor is opaque to clients: base64url of a small JSON
 * value the list chose (usually the sort key of the last item returned), so lists may change it freely.
 */

export const DEFAULT_PAGE_LIMIT = 50;
export const MAX_PAGE_LIMIT = 500;

/** Query properties of a list route; spread into its `querystring` schema's `properties`. */
export const pageQueryProperties = {
  limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_LIMIT, default: DEFAULT_PAGE_LIMIT, description: 'items per page' },
  cursor: { type: 'string', maxLength: 512, description: "the previous page's nextCursor" },
} as const;

/** The parsed paging query. */
export interface PageQuery {
  limit?: number;
  cursor?: string;
}

/** A page of a list endpoint. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Response schema of a list endpoint whose items match `item`. */
export function pageSchema(item: object): object {
  return {
    type: 'object',
    required: ['items', 'nextCursor'],
    properties: {
      items: { type: 'array', items: item },
      nextCursor: { type: ['string', 'null'], description: 'pass as cursor to get the next page; null on the last page' },
    },
  };
}

/** Position after which the next page of a newest-first list starts: the last row's (created_at, id). */
export interface CursorKey {
  at: string;
  id: string;
}

/** A UUID as PostgreSQL's `uuid` type reads it. */
export const isUuid = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v);

/** A device id (DESIGN §2): 24 lower-case hex digits, the sort key of per-device lists. */
export const isDeviceId = (v: unknown): v is string => typeof v === 'string' && new RegExp(DEVICE_ID_PATTERN).test(v);

/** An ISO 8601 instant in years 0001-9999, which `timestamptz` and every client hold (DESIGN §6). */
export function isStorableTime(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  const ms = Date.parse(v);
  return Number.isFinite(ms) && ms >= Date.parse('0001-01-01T00:00:00Z') && ms < Date.parse('9999-12-31T00:00:00Z');
}

/** A {@link CursorKey}, checked as the query will cast it, so a forged cursor is a 400, not a database error. */
export const isCursorKey = (v: unknown): v is CursorKey =>
  typeof v === 'object' && v !== null && isStorableTime((v as { at?: unknown }).at) && isUuid((v as { id?: unknown }).id);

export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/**
 * Decodes a cursor made by {@link encodeCursor}; `check` narrows it to the
 * store's shape. A cursor that is not one answers 400 naming `query.cursor`.
 */
export function decodeCursor<T>(cursor: string, check: (value: unknown) => value is T): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!check(value)) throw new Errors.VALIDATION('query.cursor is not a cursor this server made');
  return value;
}

/**
 * Builds a page from rows fetched with `limit + 1`: the extra row only tells
 * that another page exists, and the cursor points after the last item kept.
 */
export function toPage<R, T>(rows: R[], limit: number, cursorOf: (row: R) => unknown, map: (row: R) => T): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  return { items: kept.map(map), nextCursor: more ? encodeCursor(cursorOf(kept[kept.length - 1]!)) : null };
}
