import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTILE_ARCHIVES, HOSTILE_LIMITS } from '../../../shared/src/test-support/hostile-archives.js';
import { extractBundle } from './extract.js';

// The same literal table the server's upload route is fed (control/src/hostile/uploads.int.test.ts).
describe('the agent extractor on the hostile-archive table', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-extract-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it.each(HOSTILE_ARCHIVES.filter((a) => a.refusal).map((a) => [a.what, a] as const))('refuses %s and writes nothing outside its directory', async (_what, row) => {
    const case_ = await fs.mkdtemp(path.join(dir, 'case-'));
    const archive = path.join(case_, 'bundle.tar.gz');
    await fs.writeFile(archive, row.bytes());
    const dest = path.join(case_, 'bundles', 'hostile', '1.0.0');
    await expect(extractBundle(archive, dest, { limits: HOSTILE_LIMITS })).rejects.toThrow(row.refusal!);
    // Nothing escaped: beside the version directory there is only what the test made.
    expect((await fs.readdir(case_)).sort()).toEqual(['bundle.tar.gz', 'bundles']);
    expect(await fs.readdir(path.join(case_, 'bundles', 'hostile'))).toEqual(['1.0.0']);
  });

  it('extracts the honest row of the table', async () => {
    const honest = HOSTILE_ARCHIVES.find((a) => !a.refusal)!;
    const archive = path.join(dir, 'honest.tar.gz');
    await fs.writeFile(archive, honest.bytes());
    const dest = path.join(dir, 'honest');
    await expect(extractBundle(archive, dest, { limits: HOSTILE_LIMITS })).resolves.toMatchObject({ name: 'hostile', version: '1.0.0' });
    expect(await fs.readFile(path.join(dest, 'lib', 'data.txt'), 'utf8')).toBe('ok');
  });
});
