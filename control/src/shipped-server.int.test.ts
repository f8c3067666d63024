import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIST = path.join(ROOT, 'control', 'dist');

/**
 * Every module URL that importing `entry` (built JavaScript) makes Node resolve, recorded by a
 * resolve hook in a fresh process: what a running `kernex server` would load, not what its
 * source says it imports.
 */
async function modulesLoadedBy(entry: string): Promise<string[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-loads-'));
  const record = path.join(dir, 'loads.txt');
  try {
    const hooks = [
      `import fs from 'node:fs';`,
      `export async function resolve(specifier, context, next) {`,
      `  const result = await next(specifier, context);`,
      `  fs.appendFileSync(${JSON.stringify(record)}, result.url + '\\n');`,
      `  return result;`,
      `}`,
    ].join('\n');
    const register = [
      `import { register } from 'node:module';`,
      `register(${JSON.stringify('data:text/javascript,' + encodeURIComponent(hooks))});`,
    ].join('\n');
    await promisify(execFile)(process.execPath, [
      '--import', 'data:text/javascript,' + encodeURIComponent(register),
      '--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(entry).href)});`,
    ], { cwd: ROOT });
    return (await fs.readFile(record, 'utf8')).split('\n').filter(Boolean);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

// DESIGN §1: the server's runtime never loads agent code; `kernex sim` runs the agent's simulator as a child.
describe('the shipped server', () => {
  it.each(['main.js', 'server.js', 'cli/sim.command.js'])('loads no agent module when %s is imported', async (entry) => {
    const agent = pathToFileURL(await fs.realpath(path.join(ROOT, 'node_modules', '@kernex', 'agent'))).href + '/';
    const loaded = await modulesLoadedBy(path.join(DIST, entry));
    // The hook saw the server's own modules, so an empty list cannot pass by accident.
    expect(loaded).toContain(pathToFileURL(path.join(DIST, entry)).href);
    expect(loaded.filter((url) => url.startsWith(agent))).toEqual([]);
  });

  it('holds no benchmark or simulator code in its build', async () => {
    const files = await filesUnder(DIST);
    expect(files).toContain('server.js');
    expect(files.filter((f) => /(^|\/)(bench|sim|swarm)(\/|\.|-)/.test(f) && !f.startsWith('cli/sim.command.'))).toEqual([]);
  });
});
