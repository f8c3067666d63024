import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FileIndex } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTILE_ARCHIVES, HOSTILE_LIMITS } from '../../../shared/src/test-support/hostile-archives.js';
import { makeArchive } from '../../../shared/src/test-support/make-bundle.js';
import { buildFromDelta, DeltaRefusedError, verifyTree } from './delta.js';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** B: one file kept from A, one new; and A's tree on disk. */
const index: FileIndex = {
  name: 'app',
  version: '2.0.0',
  entries: [
    { path: 'lib', type: 'directory', mode: 0o755, size: 0 },
    { path: 'lib/data.txt', type: 'file', mode: 0o644, size: 3, sha256: sha('new') },
    { path: 'lib/link', type: 'symlink', mode: 0o777, size: 0, target: 'data.txt', sha256: sha('data.txt') },
    { path: 'manifest.json', type: 'file', mode: 0o644, size: 4, sha256: sha('kept') },
  ],
};

describe('building B from A plus a delta', () => {
  let root: string;
  let fromDir: string;
  let n = 0;
  const dest = (): string => path.join(root, `b${++n}`);
  const deltaFile = async (archive: Buffer): Promise<string> => {
    const f = path.join(root, `d${++n}.tar.gz`);
    await fs.writeFile(f, archive);
    return f;
  };

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-delta-'));
    fromDir = path.join(root, 'a');
    await fs.mkdir(fromDir);
    await fs.writeFile(path.join(fromDir, 'manifest.json'), 'kept');
  });
  afterAll(() => fs.rm(root, { recursive: true, force: true }));

  it('builds exactly the index from the delta and A, and the check passes', async () => {
    const d = dest();
    const made = await buildFromDelta({ delta: await deltaFile(await makeArchive([{ name: 'lib/data.txt', body: 'new' }])), index, fromDir, dest: d });
    expect(made).toEqual({ fromDelta: 1, fromPrevious: 1 });
    await verifyTree(d, index);
    expect(await fs.readFile(path.join(d, 'manifest.json'), 'utf8')).toBe('kept');
    expect(await fs.readlink(path.join(d, 'lib/link'))).toBe('data.txt');
  });

  it('refuses every row of the hostile-archive table as a delta, leaving nothing outside its directory', async () => {
    for (const row of HOSTILE_ARCHIVES) {
      const d = dest();
      const err = await buildFromDelta({ delta: await deltaFile(row.bytes()), index, fromDir, dest: d, limits: HOSTILE_LIMITS }).catch((e: unknown) => e);
      // Refused at its first entry the index does not allow, or at the unsafe one: refused either way.
      expect(err, row.what).toBeInstanceOf(DeltaRefusedError);
    }
    expect((await fs.readdir(root)).filter((e) => !/^(a|b\d+|d\d+\.tar\.gz)$/.test(e))).toEqual([]);
  });

  it('refuses a tree with one entry more or one changed, whatever built it', async () => {
    const d = dest();
    await buildFromDelta({ delta: await deltaFile(await makeArchive([{ name: 'lib/data.txt', body: 'new' }])), index, fromDir, dest: d });
    await fs.writeFile(path.join(d, 'lib', 'extra'), 'x');
    await expect(verifyTree(d, index)).rejects.toThrow(/'lib\/extra', which the index does not/);
    await fs.rm(path.join(d, 'lib', 'extra'));
    await fs.chmod(path.join(d, 'manifest.json'), 0o777);
    await expect(verifyTree(d, index)).rejects.toThrow(/mode/);
  });

  it('refuses when a content is neither in the delta nor in A', async () => {
    await expect(buildFromDelta({ delta: await deltaFile(await makeArchive([])), index, fromDir, dest: dest() })).rejects.toThrow(/neither in the delta nor in version/);
  });
});
