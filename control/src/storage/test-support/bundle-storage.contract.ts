import fs from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { BlobNotFoundError, type BundleStorage } from '../bundle-storage.js';

/**
 * The behaviour every {@link BundleStorage} backend must have (the
 * aedes-persistence pattern): call it from each backend's test file.
 */
export function bundleStorageContract(name: string, make: () => Promise<BundleStorage>): void {
  describe(`BundleStorage contract: ${name}`, () => {
    async function stage(storage: BundleStorage, body: string): Promise<string> {
      const p = storage.tempPath();
      await fs.writeFile(p, body);
      return p;
    }

    it('stores a staged file and reads it back whole and by range', async () => {
      const storage = await make();
      const tmp = await stage(storage, '0123456789');
      await storage.put('b1', tmp);
      await expect(fs.access(tmp)).rejects.toThrow();
      expect(await storage.stat('b1')).toEqual({ size: 10 });
      expect(await text(await storage.open('b1'))).toBe('0123456789');
      expect(await text(await storage.open('b1', { start: 3, end: 5 }))).toBe('345');
      expect(await text(await storage.open('b1', { start: 9, end: 9 }))).toBe('9');
    });

    it('reports an absent blob', async () => {
      const storage = await make();
      expect(await storage.stat('absent')).toBeUndefined();
      await expect(storage.open('absent')).rejects.toBeInstanceOf(BlobNotFoundError);
    });

    it('deletes, and deleting twice is harmless', async () => {
      const storage = await make();
      await storage.put('b2', await stage(storage, 'x'));
      await storage.delete('b2');
      await storage.delete('b2');
      expect(await storage.stat('b2')).toBeUndefined();
    });

    it('replaces a blob put twice under one key', async () => {
      const storage = await make();
      await storage.put('b3', await stage(storage, 'old'));
      await storage.put('b3', await stage(storage, 'new!'));
      expect(await text(await storage.open('b3'))).toBe('new!');
    });

    it('refuses a key that could name a path', async () => {
      const storage = await make();
      await expect(storage.stat('../x')).rejects.toThrow(/bad blob key/);
    });
  });
}
