import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import type { KernexProcess } from './kernex-process.js';

/** A valid bundle (DESIGN §4) with `payloadBytes` of incompressible payload, as a .tar.gz. */
export async function benchBundle(version: string, payloadBytes: number): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => pack.once('end', resolve).once('error', reject));
  const add = (name: string, body: Buffer, mode = 0o644): Promise<void> =>
    new Promise((resolve, reject) => pack.entry({ name, mode, size: body.length }, body, (err) => (err ? reject(err) : resolve())));
  await add('manifest.json', Buffer.from(JSON.stringify({ name: 'bench', version, install: 'install.sh' })));
  await add('install.sh', Buffer.from('#!/bin/sh\nexit 0\n'), 0o755);
  if (payloadBytes > 0) await add('payload.bin', randomBytes(payloadBytes));
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks), { level: 1 });
}

/** Uploads a bundle with the admin key; answers its id and size. */
export async function uploadBundle(server: KernexProcess, archive: Buffer): Promise<{ id: string; size: number }> {
  const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
  if (res.status !== 201) throw new Error(`bundle upload: ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string; size: number };
}
