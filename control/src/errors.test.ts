import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Errors } from './errors.js';

describe('error codes', () => {
  it('lists every code of errors.ts in the README error table', () => {
    const readme = fs.readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    for (const E of Object.values(Errors)) {
      const { code, statusCode } = new (E as new (...a: string[]) => { code: string; statusCode: number })('x', 'y');
      expect(readme, code).toContain(`| \`${code}\` | ${statusCode} |`);
    }
  });
});
