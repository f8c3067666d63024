import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { BlobNotFoundError, type BundleStorage, type ByteRange, type StoredBlob } from './bundle-storage.js';

const KEY = /^[A-Za-z0-9._-]{1,128}$/;
const SUFFIX = '.tar.gz';

/**
 * Bundle blobs as files in a directory (default: KERNEX_DATA_DIR/bundles).
 * Uploads are staged in `tmp/` beside them so `put` is a rename, which is
 * atomic: a blob is either whole or absent.
 */
export class LocalBundleStorage implements BundleStorage {
  private readonly tmpDir: string;

  private constructor(private readonly root: string) {
    this.tmpDir = path.join(root, 'tmp');
  }

  /** Creates the directories; leftovers of uploads cut by a crash are removed. */
  static async open(root: string): Promise<LocalBundleStorage> {
    const storage = new LocalBundleStorage(root);
    await fs.rm(storage.tmpDir, { recursive: true, force: true });
    await fs.mkdir(storage.tmpDir, { recursive: true, mode: 0o700 });
    return storage;
  }

  tempPath(): string {
    return path.join(this.tmpDir, `${randomUUID()}.part`);
  }

  private file(key: string): string {
    if (!KEY.test(key)) throw new Error(`bad blob key '${key}'`);
    return path.join(this.root, `${key}${SUFFIX}`);
  }

  async put(key: string, tempFile: string): Promise<void> {
    const target = this.file(key);
    try {
      await fs.rename(tempFile, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      await fs.copyFile(tempFile, `${target}.part`);
      await fs.rename(`${target}.part`, target);
      await fs.rm(tempFile, { force: true });
    }
  }

  async open(key: string, range?: ByteRange): Promise<Readable> {
    const file = this.file(key);
    const handle = await fs.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new BlobNotFoundError(key);
      throw err;
    });
    // The handle's own stream closes it: no descriptor is left for the garbage collector.
    return handle.createReadStream({ start: range?.start, end: range?.end, autoClose: true });
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      const st = await fs.stat(this.file(key));
      return { size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.file(key), { force: true });
  }

  async *list(): AsyncIterable<StoredBlob> {
    for (const entry of await fs.readdir(this.root, { withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith(SUFFIX)) continue;
      const key = entry.name.slice(0, -SUFFIX.length);
      if (!KEY.test(key)) continue;
      const st = await fs.stat(path.join(this.root, entry.name)).catch(() => undefined);
      // Gone between readdir and stat: deleted meanwhile, so not stored.
      if (st) yield { key, size: st.size, modifiedAt: st.mtime };
    }
  }
}
