import fs from 'node:fs/promises';
import type { Summary } from './stats.js';

/** One row of a benchmark table. */
export interface FigureRow {
  figure: string;
  unit: string;
  kernex: Summary;
  /** The same figure for a reference system measured in the same run (Mosquitto, HTTP polling). */
  reference?: { name: string; summary: Summary };
  /** What bounds this figure (the server, the client process, the disk, ...). */
  limitedBy: string;
  target?: string;
}

const fmt = (n: number): string =>
  !Number.isFinite(n) ? 'n/a' : Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(3);

const range = (s: Summary): string => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)}, ${s.runs} runs)`;

/** Renders a table of figures; the ratio column is Kernex / reference. */
export function renderTable(rows: readonly FigureRow[]): string {
  const lines = [
    '| figure | Kernex: median (min–max) | reference | ratio | limited by | target |',
    '|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const ref = r.reference ? `${r.reference.name}: ${range(r.reference.summary)}` : '—';
    const ratio = r.reference ? `${(r.kernex.median / r.reference.summary.median).toFixed(2)}×` : '—';
    lines.push(`| ${r.figure} (${r.unit}) | ${range(r.kernex)} | ${ref} | ${ratio} | ${r.limitedBy} | ${r.target ?? '—'} |`);
  }
  return lines.join('\n');
}

/**
 * Replaces the block between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`
 * in BENCHMARKS.md (appending it if absent), so each benchmark rewrites only
 * its own section and hand-written notes stay.
 */
export async function writeSection(file: string, name: string, body: string): Promise<void> {
  let text = '';
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    text = '# Benchmarks\n\nWritten by `npm run bench`; figures are medians of several runs with min–max.\n';
  }
  const open = `<!-- bench:${name} -->`;
  const close = `<!-- /bench:${name} -->`;
  const block = `${open}\n${body.trim()}\n${close}`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  text = start >= 0 && end > start ? text.slice(0, start) + block + text.slice(end + close.length) : `${text.trimEnd()}\n\n${block}\n`;
  await fs.writeFile(file, text);
}
