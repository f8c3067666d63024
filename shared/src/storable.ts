/**
 * What PostgreSQL can store (DESIGN §3, §6): text without NUL and without lone UTF-16
 * surrogates, and JSON nested no deeper than a sane bound. Every boundary that takes
 * strings from outside (MQTT payloads, HTTP bodies and queries) checks with this before
 * the value reaches a batch, so one bad value is refused alone and never holds back others.
 */

/** Deepest nesting of arrays and objects accepted in any payload or body. */
export const MAX_JSON_DEPTH = 32;

// A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when `s` holds NUL or a lone surrogate, which PostgreSQL text and jsonb refuse. */
export function isUnstorableString(s: string): boolean {
  return UNSTORABLE.test(s);
}

/** Why a value cannot be stored: where in it (`$.a.b[2]`) and what is wrong. */
export interface UnstorableValue {
  path: string;
  reason: 'invalid_string' | 'too_deep';
}

/**
 * Walks `value` (object keys and values, array items) without recursion and returns the first
 * string PostgreSQL cannot store or the first place nested deeper than `maxDepth`, or
 * undefined when everything is storable.
 */
export function findUnstorable(value: unknown, maxDepth = MAX_JSON_DEPTH): UnstorableValue | undefined {
  const stack: Array<{ v: unknown; path: string; depth: number }> = [{ v: value, path: '$', depth: 0 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      if (isUnstorableString(v)) return { path, reason: 'invalid_string' };
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= maxDepth) return { path, reason: 'too_deep' };
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: `${path}[${i}]`, depth: depth + 1 });
      continue;
    }
    for (const [key, child] of Object.entries(v)) {
      if (isUnstorableString(key)) return { path: `${path}[${JSON.stringify(key)}]`, reason: 'invalid_string' };
      stack.push({ v: child, path: `${path}.${key}`, depth: depth + 1 });
    }
  }
  return undefined;
}
