import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

type Version = [number, number, number];

/**
 * Whether a package.json `engines.node` range admits `v`: the forms npm packages use
 * (`>=20`, `^20.19.0 || >=22.12.0`, `18 || 20 || >=22`, `>=14.0.0 <21`, `*`). A form it
 * does not know fails the test, so it is taught rather than passed by accident.
 */
export function admits(range: string, v: Version): boolean {
  const normal = range
    .replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1') // `>= 14` is `>=14`
    .replace(/(\S+)\s+-\s+(\S+)/g, '>=$1 <=$2'); // `14 - 20` is `>=14 <=20`
  return normal.split('||').some((alt) => alt.trim().split(/\s+/).filter(Boolean).every((c) => comparator(c, v)));
}

function cmp(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function comparator(c: string, v: Version): boolean {
  if (c === '*' || c === 'x') return true;
  const m = /^(>=|<=|>|<|=|\^|~)?v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(c);
  if (!m) throw new Error(`engines comparator '${c}' is not understood by this test`);
  const op = m[1] ?? '';
  const parts = [m[2], m[3], m[4]].map((p) => (p === undefined || p === 'x' || p === '*' ? undefined : Number(p)));
  const base: Version = [parts[0]!, parts[1] ?? 0, parts[2] ?? 0];
  // Partial versions (`20`, `20.x`, `^20`) mean "anything with that prefix".
  const upper = (): Version => {
    if (op === '^') return base[0] > 0 ? [base[0] + 1, 0, 0] : [0, base[1] + 1, 0];
    if (op === '~' || parts[2] === undefined) return parts[1] === undefined ? [base[0] + 1, 0, 0] : [base[0], base[1] + 1, 0];
    return [base[0], base[1], base[2] + 1];
  };
  switch (op) {
    case '>=':
      return cmp(v, base) >= 0;
    case '>':
      return cmp(v, upper()) >= 0;
    case '<=':
      return cmp(v, upper()) < 0;
    case '<':
      return cmp(v, base) < 0;
    default:
      return cmp(v, base) >= 0 && cmp(v, upper()) < 0;
  }
}

const root = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(fs.readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8')) as {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[]; optional?: boolean; os?: string[]; cpu?: string[] }>;
};

describe('Node.js versions', () => {
  it('reads the engines ranges npm packages use', () => {
    expect(admits('>=22', [20, 19, 0])).toBe(false);
    expect(admits('^20.19.0 || >=22.12.0', [20, 19, 0])).toBe(true);
    expect(admits('^20.19.0 || >=22.12.0', [20, 11, 0])).toBe(false);
    expect(admits('18 || 20 || >=22', [20, 0, 0])).toBe(true);
    expect(admits('>=14.0.0 <21', [20, 19, 0])).toBe(true);
    expect(admits('^18.0.0', [20, 19, 0])).toBe(false);
    expect(admits('>= 14', [20, 19, 0])).toBe(true);
    expect(admits('14 - 20', [20, 19, 0])).toBe(true);
  });

  it('every installed package supports the oldest Node.js the root package promises (npm install prints no EBADENGINE)', () => {
    const m = /^>=\s*(\d+)\.(\d+)(?:\.(\d+))?$/.exec(root.engines.node);
    expect(m, `root engines.node '${root.engines.node}' is a plain lower bound`).not.toBeNull();
    const oldest: Version = [Number(m![1]), Number(m![2]), Number(m![3] ?? 0)];
    const refused = Object.entries(lock.packages)
      .filter(([p, meta]) => p !== '' && !Array.isArray(meta.engines) && meta.engines?.node && !admits(meta.engines.node, oldest))
      .map(([p, meta]) => `${p}@${meta.version} needs node ${(meta.engines as { node: string }).node}`);
    expect(refused).toEqual([]);
  });
});
