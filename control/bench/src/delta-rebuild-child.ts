import fs from 'node:fs/promises';
import path from 'node:path';
import { parseIndex } from '@kernex/shared';

/**
 * Child process of the delta benchmark: what the agent does on the device,
 * with the agent's own code (its built dist, loaded by path: control does not
 * depend on the agent package). `delta` rebuilds B from A's unpacked tree plus
 * the delta and checks it against the index; `full` unpacks B's archive. A's
 * unpacking is done first and not counted. Prints CPU ms and peak RSS.
 */
const [mode, aArchive, bArchive, deltaFile, indexFile, work] = process.argv.slice(2) as [string, string, string, string, string, string];
const agent = (p: string): string => new URL(`../../../agent/dist/bundle/${p}`, import.meta.url).href;
const { extractBundle } = (await import(agent('extract.js'))) as { extractBundle(a: string, d: string): Promise<unknown> };
const { buildFromDelta, verifyTree } = (await import(agent('delta.js'))) as {
  buildFromDelta(o: { delta: string; index: unknown; fromDir: string; dest: string }): Promise<unknown>;
  verifyTree(d: string, i: unknown): Promise<void>;
};
await fs.rm(work, { recursive: true, force: true });
await fs.mkdir(work, { recursive: true });
const fromDir = path.join(work, 'a');
await extractBundle(aArchive, fromDir);
const indexText = await fs.readFile(indexFile, 'utf8');
const baseRss = process.memoryUsage().rss;
const before = process.cpuUsage();
if (mode === 'delta') {
  const parsed = parseIndex(indexText);
  if ('reason' in parsed) throw new Error(parsed.reason);
  await buildFromDelta({ delta: deltaFile, index: parsed.index, fromDir, dest: path.join(work, 'b') });
  await verifyTree(path.join(work, 'b'), parsed.index);
} else {
  await extractBundle(bArchive, path.join(work, 'b'));
}
const cpu = process.cpuUsage(before);
process.stdout.write(`${JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000, peakRssMiB: process.resourceUsage().maxRSS / 1024, baseRssMiB: baseRss / 1024 / 1024 })}\n`);
await fs.rm(work, { recursive: true, force: true });
