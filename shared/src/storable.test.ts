import { describe, expect, it } from 'vitest';
import { findUnstorable, isUnstorableString } from './storable.js';

describe('storable strings', () => {
  it.each([
    ['a\u0000b', true],
    ['\uD800', true],
    ['x\uDFFFy', true],
    ['\uD83D\uDE00', false], // a valid surrogate pair (an emoji)
    ['plain ascii', false],
    ['äöü', false],
  ])('isUnstorableString(%j) is %s', (s, bad) => {
    expect(isUnstorableString(s)).toBe(bad);
  });

  it('names the path of the first bad string, in values and keys', () => {
    expect(findUnstorable({ a: { b: ['ok', 'n\u0000'] } })).toEqual({ path: '$.a.b[1]', reason: 'invalid_string' });
    expect(findUnstorable({ ['k\uD800']: 1 })).toEqual({ path: '$["k\\ud800"]', reason: 'invalid_string' });
    expect(findUnstorable({ a: 1, b: [true, null, 'fine'] })).toBeUndefined();
  });

  it('refuses nesting beyond the bound without overflowing the stack', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 5000; i++) deep = { d: deep };
    expect(findUnstorable(deep)?.reason).toBe('too_deep');
    expect(findUnstorable({ a: { b: 1 } }, 2)).toBeUndefined();
    expect(findUnstorable({ a: { b: {} } }, 2)?.reason).toBe('too_deep');
  });
});
