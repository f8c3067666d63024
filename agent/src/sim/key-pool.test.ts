import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { KeyPool } from './key-pool.js';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-keypool-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const pem = (i: number): string => `-----BEGIN PRIVATE KEY-----\nkey${i}\n-----END PRIVATE KEY-----\n`;

it('keeps keys in index order across opens and only appends the contiguous new ones', async () => {
  const pool = await KeyPool.open(dir, 'p256');
  expect(pool.take(2)).toEqual([undefined, undefined]);
  await pool.add(new Map([[0, pem(0)], [1, pem(1)], [3, pem(3)]]));
  const again = await KeyPool.open(dir, 'p256');
  expect(again.size).toBe(2);
  expect(again.take(3)).toEqual([pem(0), pem(1), undefined]);
  expect((await fs.stat(path.join(dir, 'p256.jsonl'))).mode & 0o777).toBe(0o600);
});

it('drops a torn last line (an interrupted write) and keeps the keys before it', async () => {
  await fs.writeFile(path.join(dir, 'rsa.jsonl'), `${JSON.stringify(pem(0))}\n${JSON.stringify(pem(1)).slice(0, 10)}`);
  const pool = await KeyPool.open(dir, 'rsa');
  expect(pool.take(2)).toEqual([pem(0), undefined]);
  await pool.add(new Map([[1, pem(1)]]));
  expect((await KeyPool.open(dir, 'rsa')).take(2)).toEqual([pem(0), pem(1)]);
});
