import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

/** One entry of a test archive; `type` defaults to file. */
export interface TestEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  body?: string | Buffer;
  linkname?: string;
  mode?: number;
  /** Declared size, for a header that lies (defaults to the body's length). */
  size?: number;
}

/** A .tar.gz of `entries`, built in memory (tests only: bundles here are small). */
export async function makeArchive(entries: TestEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => pack.once('end', () => resolve()).once('error', reject));
  for (const e of entries) {
    const body = e.body === undefined ? undefined : Buffer.from(e.body);
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      size: type === 'file' ? (e.size ?? body?.length ?? 0) : 0,
      linkname: e.linkname,
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry(header, body ?? Buffer.alloc(0), cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

/** A valid bundle: manifest, install script, optional health check script. */
export async function makeBundle(opts: {
  name?: string;
  version: string;
  install?: string;
  healthCheck?: string;
  healthTimeoutS?: number;
  extra?: TestEntry[];
  padding?: number;
}): Promise<Buffer> {
  const manifest = {
    name: opts.name ?? 'app',
    version: opts.version,
    install: 'install.sh',
    ...(opts.healthCheck !== undefined ? { healthCheck: { script: 'check.sh', timeoutS: opts.healthTimeoutS ?? 10 } } : {}),
    description: `test bundle ${opts.version}`,
  };
  const entries: TestEntry[] = [
    { name: 'manifest.json', body: JSON.stringify(manifest) },
    { name: 'install.sh', body: opts.install ?? '#!/bin/sh\nexit 0\n', mode: 0o755 },
  ];
  if (opts.healthCheck !== undefined) entries.push({ name: 'check.sh', body: opts.healthCheck, mode: 0o755 });
  if (opts.padding) entries.push({ name: 'payload.bin', body: randomish(opts.padding) });
  entries.push(...(opts.extra ?? []));
  return makeArchive(entries);
}

/** Incompressible bytes (a fixed xorshift sequence), so an archive or a body is as large as asked. */
export function randomish(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 2463534242;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
