import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The shipped (non-test) TypeScript files under `dir`, relative to the repository root. */
async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(path.join(ROOT, dir), { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)))
    .filter((f) => !f.includes('/test-support/'))
    .sort();
}

async function filesMatching(files: readonly string[], pattern: RegExp): Promise<string[]> {
  const hits: string[] = [];
  for (const f of files) if (pattern.test(await fs.readFile(path.join(ROOT, f), 'utf8'))) hits.push(f);
  return hits;
}

// STYLE.md "Boundaries" and issue 11 "Layers" / "Wiring": these hold by construction, so a
// change that breaks them fails here rather than in review.
describe('the layers of control', () => {
  it('runs SQL only in store/: nothing else imports postgres, opens a transaction or writes a query', async () => {
    const files = (await sourceFiles('control/src')).filter((f) => !f.startsWith('control/src/store/'));
    expect(files).toContain('control/src/orchestrator/orchestrator.ts');
    expect(await filesMatching(files, /from 'postgres'|\.begin\(|\b(sql|tx|db)`/)).toEqual([]);
  });

  it('builds the server by constructor injection: server.ts assigns no field of what it built', async () => {
    const server = await fs.readFile(path.join(ROOT, 'control/src/server.ts'), 'utf8');
    const assignments = server.split('\n').filter((line) => /^\s*[A-Za-z_$][\w$]*\.[\w$.]+\s*=[^=>]/.test(line));
    expect(assignments).toEqual([]);
  });

  it('defines every Prometheus metric in one metrics.ts per package', async () => {
    const files = [...(await sourceFiles('control/src')), ...(await sourceFiles('broker/src'))];
    expect((await filesMatching(files, /new (Counter|Gauge|Histogram|Summary)\b/)).sort()).toEqual(['broker/src/metrics.ts', 'control/src/metrics.ts']);
  });
});
