// Builds the web console (DESIGN §9) into dist/console: our static files as they
// are, plus Preact, htm and uPlot copied from node_modules ("vendored at build
// time": no CDN, works offline). No bundler: the browser loads ES modules, and
// the one bare import (preact/hooks -> "preact") is pointed at the copied file.
import fs from 'node:fs/promises';
import path from 'node:path';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, '..', 'console');
const out = path.join(here, '..', 'dist', 'console');
const require = createRequire(path.join(here, '..', 'package.json'));
// Some packages export no ./package.json: look for the folder along Node's own search paths.
const pkgDir = (name) => {
  const dir = (require.resolve.paths(name) ?? []).map((p) => path.join(p, name)).find((d) => existsSync(path.join(d, 'package.json')));
  if (!dir) throw new Error(`package ${name} is not installed`);
  return dir;
};

const vendor = [
  ['preact', 'dist/preact.module.js', 'preact.js'],
  ['preact', 'hooks/dist/hooks.module.js', 'preact-hooks.js', (s) => s.replace(/from\s*"preact"/g, 'from"./preact.js"')],
  ['htm', 'dist/htm.module.js', 'htm.js'],
  ['uplot', 'dist/uPlot.esm.js', 'uplot.js'],
  ['uplot', 'dist/uPlot.min.css', 'uplot.css'],
];

await fs.rm(out, { recursive: true, force: true });
await fs.mkdir(path.join(out, 'vendor'), { recursive: true });
await fs.cp(src, out, { recursive: true });
for (const [pkg, file, as, transform] of vendor) {
  let text = await fs.readFile(path.join(pkgDir(pkg), file), 'utf8');
  // Source maps are not copied; drop the reference so browsers do not ask for them.
  text = text.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n');
  if (transform) text = transform(text);
  if (/\b(from|import)\s*["'][@\w][\w@/.-]*["']/.test(text)) throw new Error(`vendor/${as} still has a bare import`);
  await fs.writeFile(path.join(out, 'vendor', as), text);
}
const { version } = JSON.parse(await fs.readFile(path.join(pkgDir('preact'), 'package.json'), 'utf8'));
process.stdout.write(`console built in ${path.relative(process.cwd(), out) || '.'} (preact ${version})\n`);
