import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import * as errors from './errors.js';

const README = new URL('../../README.md', import.meta.url);

/** Codes and classes of the README's "Agent and library errors" table. */
async function documented(): Promise<Map<string, string>> {
  const text = await fs.readFile(README, 'utf8');
  const section = text.split(/^## Agent and library errors$/m)[1]?.split(/^## /m)[0] ?? '';
  return new Map([...section.matchAll(/^\| `(KX_[A-Z_]+)` \| `(\w+)` \|/gm)].map((m) => [m[2]!, m[1]!]));
}

describe('declared errors', () => {
  it('gives every error class a stable code listed in the README', async () => {
    const table = await documented();
    const classes = Object.entries(errors) as [string, new (...args: unknown[]) => Error & { code: string }][];
    expect(classes.length).toBeGreaterThan(0);
    for (const [name, E] of classes) {
      const e = new E(...(name === 'AgentConfigError' ? [['x']] : ['x', 'y', false]));
      expect(e, name).toBeInstanceOf(Error);
      expect(e.name, name).toBe(name);
      expect(table.get(name), name).toBe(e.code);
    }
  });
});
