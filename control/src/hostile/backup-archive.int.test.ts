import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../test-support/run-cli.js';

/** A gzip'd tar with the given entries, as a hostile or broken "backup". */
async function archive(file: string, entries: Array<{ name: string; body: string; type?: 'file' | 'symlink'; linkname?: string }>): Promise<void> {
  const pack = tar.pack();
  const writing = pipeline(pack, createGzip(), createWriteStream(file));
  for (const e of entries) {
    if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname });
    else pack.entry({ name: e.name }, e.body);
  }
  pack.finalize();
  await writing;
}

const manifest = JSON.stringify({ format: 'kernex-backup', version: 1, database: { migrations: [], tables: [], sequences: [] }, signingKey: '', bundles: { blobs: [], missing: [] }, dataFiles: [] });

/** `kernex restore` reads a file an operator was handed: anything that is not a Kernex backup ends in one line and leaves nothing behind. */
describe('kernex restore of hostile or broken archives', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-hostile-restore-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const restore = async (file: string): Promise<{ code: number; stderr: string; target: string }> => {
    const target = path.join(dir, `target-${path.basename(file)}`);
    const res = await runCli(['restore', file], { KERNEX_DATA_DIR: target, DATABASE_URL: 'postgres://nobody:x@127.0.0.1:1/none' });
    return { code: res.code, stderr: res.stderr, target };
  };
  const expectRefused = async (file: string, words: string): Promise<void> => {
    const res = await restore(file);
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain(words);
    await expect(fs.access(res.target)).rejects.toThrow(); // no data directory made
  };

  it('refuses an entry that climbs out of the archive, writing nothing outside', async () => {
    const file = path.join(dir, 'climb.backup');
    await archive(file, [
      { name: 'manifest.json', body: manifest },
      { name: '../../escaped.txt', body: 'x' },
    ]);
    await expectRefused(file, "unexpected entry '../../escaped.txt'");
    await expect(fs.access(path.join(os.tmpdir(), 'escaped.txt'))).rejects.toThrow();
  });

  it('refuses a symlink entry', async () => {
    const file = path.join(dir, 'link.backup');
    await archive(file, [
      { name: 'manifest.json', body: manifest },
      { name: 'bundles/x.tar.gz', body: '', type: 'symlink', linkname: '/etc/passwd' },
    ]);
    await expectRefused(file, "unexpected entry 'bundles/x.tar.gz'");
  });

  it('refuses a file that is not gzip, and a truncated archive', async () => {
    const garbage = path.join(dir, 'garbage.backup');
    await fs.writeFile(garbage, 'this is not a backup\n');
    await expectRefused(garbage, 'cannot unpack');
    const whole = path.join(dir, 'whole.backup');
    await archive(whole, [{ name: 'manifest.json', body: manifest }, { name: 'database/devices.copy', body: 'x'.repeat(100_000) }]);
    const bytes = await fs.readFile(whole);
    const cut = path.join(dir, 'cut.backup');
    await fs.writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expectRefused(cut, 'cannot unpack');
  });

  it('refuses an archive of another format or a newer version', async () => {
    const other = path.join(dir, 'other.backup');
    await archive(other, [{ name: 'manifest.json', body: JSON.stringify({ format: 'something-else', version: 1 }) }]);
    await expectRefused(other, "not a Kernex backup: format 'something-else'");
    const newer = path.join(dir, 'newer.backup');
    await archive(newer, [{ name: 'manifest.json', body: JSON.stringify({ format: 'kernex-backup', version: 99 }) }]);
    await expectRefused(newer, 'backup format version 99 is not supported');
  });

  it('refuses a backup whose migrations this Kernex does not know', async () => {
    const file = path.join(dir, 'future.backup');
    await archive(file, [{ name: 'manifest.json', body: manifest.replace('"migrations":[]', '"migrations":[{"id":999,"name":"from-the-future"}]') }]);
    await expectRefused(file, 'migration 999_from-the-future is unknown here');
  });
});
