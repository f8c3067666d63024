import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderTable, writeSection } from './report.js';

describe('BENCHMARKS.md sections', () => {
  it('rewrites only its own section and keeps notes around it', async () => {
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'kx-bench-')), 'B.md');
    await writeSection(file, 'a', 'first');
    await fs.appendFile(file, '\nA hand-written note.\n');
    await writeSection(file, 'b', 'other');
    await writeSection(file, 'a', 'second');
    const text = await fs.readFile(file, 'utf8');
    expect(text).toContain('<!-- bench:a -->\nsecond\n<!-- /bench:a -->');
    expect(text).not.toContain('first');
    expect(text).toContain('A hand-written note.');
    expect(text).toContain('<!-- bench:b -->\nother\n<!-- /bench:b -->');
  });

  it('renders the ratio against the reference', () => {
    const s = (m: number) => ({ median: m, min: m, max: m, runs: 1 });
    const table = renderTable([{ figure: 'connects', unit: '/s', kernex: s(500), reference: { name: 'Mosquitto', summary: s(1000) }, limitedBy: 'client' }]);
    expect(table).toContain('| connects (/s) | 500 (500–500, 1 runs) | Mosquitto: 1,000 (1,000–1,000, 1 runs) | 0.50× | client | — |');
  });
});
