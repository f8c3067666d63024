import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Errors } from './errors.js';

const README = new URL('../../README.md', import.meta.url);

/** Codes in the README's "HTTP errors" table, with their status. */
async function documentedCodes(): Promise<Map<string, number>> {
  const text = await fs.readFile(README, 'utf8');
  const section = text.split(/^## HTTP errors$/m)[1]?.split(/^## /m)[0] ?? '';
  const codes = new Map<string, number>();
  for (const m of section.matchAll(/^\| `(KX_[A-Z_]+)` \| (\d{3}) \|/gm)) codes.set(m[1]!, Number(m[2]));
  return codes;
}

describe('error codes', () => {
  it('lists every code of errors.ts in the README error table, with its status', async () => {
    const documented = await documentedCodes();
    const declared = Object.values(Errors).map((E) => {
      const e = new E('x', 'y');
      return [e.code, e.statusCode] as const;
    });
    for (const [code, status] of declared) expect(documented.get(code), code).toBe(status);
  });

  it('declares every code the README lists', async () => {
    const declared = new Set<string>(Object.values(Errors).map((E) => new E('x', 'y').code));
    expect([...(await documentedCodes()).keys()].filter((c) => !declared.has(c))).toEqual([]);
  });
});
