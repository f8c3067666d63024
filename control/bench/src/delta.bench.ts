import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { uploadBundle } from './bench-bundle.js';
import { startKernexServer } from './kernex-process.js';
import { appTar, nodeAppEntries } from './node-app.js';

const run = promisify(execFile);

/** Figures of one delta run. */
export interface DeltaRun {
  files: number;
  changedFiles: number;
  fullBytes: number;
  deltaBytes: number;
  /** `zstd -19 --patch-from=A.tar B.tar` (Debian's zstd), bytes. */
  zstdPatchBytes: number;
  /** Agent CPU and peak RSS to rebuild B from A plus the delta and check it; and to unpack the full bundle. */
  rebuild: { cpuMs: number; peakRssMiB: number; baseRssMiB: number };
  full: { cpuMs: number; peakRssMiB: number; baseRssMiB: number };
}

/**
 * Delta transfer (DESIGN §4): a Node app of a few thousand files, one
 * dependency bumped (about 1 % of the files). A real `kernex server` makes
 * and serves the delta (bytes counted off its delta URL); the reference is
 * zstd's patch over the uncompressed tars; the rebuild runs the agent's code
 * in a child process (`delta-rebuild-child.ts`).
 */
export async function deltaRun(packages: number, bumped: number): Promise<DeltaRun> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-delta-bench-'));
  const server = await startKernexServer();
  try {
    const aEntries = nodeAppEntries({ version: '1.0.0', packages });
    const bEntries = nodeAppEntries({ version: '1.0.1', packages, bumped, bumpTo: '1.0.1' });
    const files = bEntries.filter((e) => (e.type ?? 'file') === 'file').length;
    const aFiles = new Map(aEntries.map((e) => [e.name, e.body]));
    const changedFiles = bEntries.filter((e) => (e.type ?? 'file') === 'file' && aFiles.get(e.name) !== e.body).length;
    const [aTar, bTar] = await Promise.all([appTar(aEntries), appTar(bEntries)]);
    const f = (n: string): string => path.join(dir, n);
    await fs.writeFile(f('a.tar'), aTar);
    await fs.writeFile(f('b.tar'), bTar);
    const aGz = gzipSync(aTar);
    const bGz = gzipSync(bTar);
    await fs.writeFile(f('a.tar.gz'), aGz);
    await fs.writeFile(f('b.tar.gz'), bGz);

    const a = await uploadBundle(server, aGz);
    const b = await uploadBundle(server, bGz);
    const auth = { authorization: server.adminHeaders.authorization! };
    const delta = Buffer.from(await (await fetch(`${server.httpUrl}/api/v1/bundles/${b.id}/deltas/${a.id}/blob`, { headers: auth })).arrayBuffer());
    const index = await (await fetch(`${server.httpUrl}/api/v1/bundles/${b.id}/index`, { headers: auth })).text();
    await fs.writeFile(f('delta.tar.gz'), delta);
    await fs.writeFile(f('index.json'), index);

    await run('zstd', ['-q', '-f', '-19', '--long=27', `--patch-from=${f('a.tar')}`, f('b.tar'), '-o', f('patch.zst')]);
    const zstdPatchBytes = (await fs.stat(f('patch.zst'))).size;

    const child = fileURLToPath(new URL('./delta-rebuild-child.js', import.meta.url));
    const measure = async (mode: string): Promise<DeltaRun['rebuild']> => {
      const { stdout } = await run(process.execPath, [child, mode, f('a.tar.gz'), f('b.tar.gz'), f('delta.tar.gz'), f('index.json'), f(`work-${mode}`)]);
      return JSON.parse(stdout) as DeltaRun['rebuild'];
    };
    return { files, changedFiles, fullBytes: b.size, deltaBytes: delta.length, zstdPatchBytes, rebuild: await measure('delta'), full: await measure('full') };
  } finally {
    await server.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
