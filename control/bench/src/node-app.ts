import tar from 'tar-stream';

/** One entry of a generated bundle (the fields of make-bundle's AppEntry that the generator uses). */
export interface AppEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink';
  body?: string;
  linkname?: string;
  mode?: number;
}

/**
 * A deterministic Node app bundle shaped like real ones: a small app, then
 * `node_modules` with packages of a few to a few dozen files each (JS-like,
 * compressible text). `bumped` gives one package a new version: every file of
 * it changes, about 1 % of the bundle's files for the default sizes. Used by
 * the delta tests and the delta benchmark.
 */
export function nodeAppEntries(o: { version: string; packages: number; bumped?: number; bumpTo?: string }): AppEntry[] {
  const manifest = { name: 'node-app', version: o.version, install: 'install.sh', healthCheck: { script: 'check.sh', timeoutS: 10 } };
  const entries: AppEntry[] = [
    { name: 'manifest.json', body: JSON.stringify(manifest) },
    { name: 'install.sh', body: '#!/bin/sh\nexit 0\n', mode: 0o755 },
    { name: 'check.sh', body: '#!/bin/sh\nexit 0\n', mode: 0o755 },
    { name: 'app/', type: 'directory' },
    { name: 'app/server.js', body: code(1, 4000) },
    { name: 'node_modules/', type: 'directory' },
  ];
  for (let p = 0; p < o.packages; p++) {
    const bumped = p === o.bumped;
    const version = bumped ? (o.bumpTo ?? '2.0.0') : '1.0.0';
    const seed = p * 7919 + (bumped ? 104729 : 0);
    const dir = `node_modules/pkg-${p}`;
    const files = 3 + ((p * 37) % 40);
    entries.push({ name: `${dir}/`, type: 'directory' });
    entries.push({ name: `${dir}/package.json`, body: JSON.stringify({ name: `pkg-${p}`, version, main: 'index.js' }, null, 2) });
    entries.push({ name: `${dir}/lib/`, type: 'directory' });
    for (let f = 0; f < files; f++) entries.push({ name: `${dir}/lib/m${f}.js`, body: code(seed + f, 300 + ((seed + f * 131) % 6000)) });
    if (p % 9 === 0) entries.push({ name: `${dir}/bin`, type: 'symlink', linkname: 'lib/m0.js' });
  }
  return entries;
}

const WORDS = ['const', 'function', 'return', 'require', 'module', 'exports', 'value', 'options', 'callback', 'error', 'buffer', 'length', 'if', 'else', 'for', 'this', 'new', 'null', 'undefined', 'true', 'false', '=>', '{', '}', '(', ')', ';', '\n  '];

/** Deterministic JS-looking text of `n` bytes. */
function code(seed: number, n: number): string {
  let x = (seed * 2654435761) >>> 0 || 1;
  let out = `// generated ${seed}\n`;
  while (out.length < n) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out += `${WORDS[x % WORDS.length]} `;
    if (x % 11 === 0) out += `v${x % 997} `;
  }
  return out.slice(0, n);
}

/** The uncompressed tar of `entries` (gzip it for a bundle). */
export async function appTar(entries: readonly AppEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => pack.once('end', resolve).once('error', reject));
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = Buffer.from(e.body ?? '');
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      const header = { name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), size: type === 'file' ? body.length : 0, linkname: e.linkname };
      if (type === 'file') pack.entry(header, body, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}
