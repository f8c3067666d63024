import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { buffer, text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { BlobNotFoundError, type BundleStorage } from '../bundle-storage.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * The behaviour every {@link BundleStorage} backend must have (the
 * aedes-persistence pattern): call it from each backend's test file.
 * `storedBytes` reads the backend's own copy of a blob without the backend's
 * code (the file on disk, the S3 server's object), so the bytes really stored
 * are checked, not only what the backend reads back.
 */
export function bundleStorageContract(name: string, make: () => Promise<BundleStorage>, storedBytes: (key: string) => Promise<Buffer>): void {
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

    it('stores a blob larger than one multipart part byte for byte, and reads ranges of it', async () => {
      const storage = await make();
      // 8 MiB parts: this takes two, the second a short one.
      const body = randomBytes(9 * 1024 * 1024 + 17);
      const p = storage.tempPath();
      await fs.writeFile(p, body);
      await storage.put('big', p);
      expect(sha256(await storedBytes('big'))).toBe(sha256(body));
      expect(await storage.stat('big')).toEqual({ size: body.length });
      expect(sha256(await buffer(await storage.open('big')))).toBe(sha256(body));
      const start = 8 * 1024 * 1024 - 5;
      expect((await buffer(await storage.open('big', { start, end: start + 9 }))).equals(body.subarray(start, start + 10))).toBe(true);
    });

    it('stores a small blob byte for byte', async () => {
      const storage = await make();
      const body = randomBytes(100_000);
      const p = storage.tempPath();
      await fs.writeFile(p, body);
      await storage.put('small', p);
      expect(sha256(await storedBytes('small'))).toBe(sha256(body));
    });

    it('lists what it stores, with sizes and times, and not what it deleted', async () => {
      const storage = await make();
      const before = Date.now() - 60_000;
      await storage.put('l1', await stage(storage, 'one'));
      await storage.put('l2', await stage(storage, 'two!'));
      await storage.put('l3', await stage(storage, 'x'));
      await storage.delete('l3');
      const listed = new Map<string, { size: number; modifiedAt: Date }>();
      for await (const b of storage.list()) listed.set(b.key, b);
      expect(listed.get('l1')?.size).toBe(3);
      expect(listed.get('l2')?.size).toBe(4);
      expect(listed.has('l3')).toBe(false);
      expect(listed.get('l1')!.modifiedAt.getTime()).toBeGreaterThan(before);
    });

    it('refuses a key that could name a path', async () => {
      const storage = await make();
      await expect(storage.stat('../x')).rejects.toThrow(/bad blob key/);
    });
  });
}
