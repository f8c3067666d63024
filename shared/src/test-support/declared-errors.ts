import fs from 'node:fs/promises';
import { expect } from 'vitest';

const README = new URL('../../../README.md', import.meta.url);

/** Class → code, as the README's "Agent and library errors" table lists them. */
async function documented(): Promise<Map<string, string>> {
  const text = await fs.readFile(README, 'utf8');
  const section = text.split(/^## Agent and library errors$/m)[1]?.split(/^## /m)[0] ?? '';
  return new Map([...section.matchAll(/^\| `(KX_[A-Z_]+)` \| `(\w+)` \|/gm)].map((m) => [m[2]!, m[1]!]));
}

/**
 * Checks every error class an errors.ts module exports: an Error named after its class,
 * with the stable code the README's table gives it. `args` builds a class's constructor
 * arguments where the default (`'x', 'y', false`) does not fit.
 */
export async function expectDeclaredErrors(module: Record<string, unknown>, args: Record<string, unknown[]> = {}): Promise<void> {
  const table = await documented();
  const classes = Object.entries(module).filter(([name]) => name !== 'CodedError') as [string, new (...a: unknown[]) => Error & { code: string }][];
  expect(classes.length).toBeGreaterThan(0);
  for (const [name, E] of classes) {
    const e = new E(...(args[name] ?? ['x', 'y', false]));
    expect(e, name).toBeInstanceOf(Error);
    expect(e.name, name).toBe(name);
    expect(table.get(name), name).toBe(e.code);
  }
}
