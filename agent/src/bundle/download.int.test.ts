import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpClient } from '../device-http-client.js';
import { download, MAX_RETRY_AFTER_MS, retryAfterMs } from './download.js';

describe('Retry-After, as the agent reads it', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  it('takes seconds and HTTP dates, within [0, MAX_RETRY_AFTER_MS]', () => {
    expect(retryAfterMs('5', now)).toBe(5000);
    expect(retryAfterMs(' 0 ', now)).toBe(0);
    expect(retryAfterMs('Tue, 01 Dec 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Tue, 01 Dec 2026 11:00:00 GMT', now)).toBe(0); // in the past: at once
    expect(retryAfterMs('86400', now)).toBe(MAX_RETRY_AFTER_MS);
  });
  it('ignores what is absent or unreadable', () => {
    for (const bad of [undefined, '', 'soon', '-3', '1.5', 'Tue, 99 Foo 2026']) expect(retryAfterMs(bad, now)).toBeUndefined();
  });
});

/** A blob server on loopback that answers each request with the next of `answers`, then the blob. */
describe('a bundle download told to wait', () => {
  const blob = Buffer.alloc(64 * 1024, 7);
  const sha256 = createHash('sha256').update(blob).digest('hex');
  let answers: Array<{ status: number; headers?: Record<string, string> }> = [];
  let requests = 0;
  let server: http.Server;
  let url: string;
  let dir: string;

  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      requests++;
      const next = answers.shift();
      if (next) {
        res.writeHead(next.status, { 'content-type': 'application/json', ...next.headers });
        res.end('{"code":"KX_STORAGE_UNAVAILABLE"}');
        return;
      }
      res.writeHead(200, { 'content-length': blob.length, etag: `"${sha256}"` });
      res.end(blob);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/b`;
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-download-'));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** Downloads through `given` answers; the waits it took between attempts. */
  async function run(given: typeof answers): Promise<number[]> {
    answers = [...given];
    requests = 0;
    const waits: number[] = [];
    const file = path.join(dir, `f-${Math.random()}`);
    await download({
      url,
      http: new HttpClient(),
      file,
      size: blob.length,
      sha256,
      token: async () => 't',
      log: pino({ level: 'silent' }),
      wait: async (ms) => void waits.push(ms),
    });
    expect(await fs.readFile(file)).toEqual(blob);
    expect(requests).toBe(given.length + 1);
    return waits;
  }

  it('waits as long as a 503 or a 429 asks before it tries again', async () => {
    expect(await run([{ status: 503, headers: { 'retry-after': '7' } }])).toEqual([7000]);
    expect(await run([{ status: 429, headers: { 'retry-after': '2' } }, { status: 503, headers: { 'retry-after': '3' } }])).toEqual([2000, 3000]);
  });

  it('keeps its own backoff when the answer names no wait, or is not one that may (a 500)', async () => {
    const [plain] = await run([{ status: 503 }]);
    expect(plain).toBeLessThan(500); // the first window of its backoff (500 ms)
    const [other] = await run([{ status: 500, headers: { 'retry-after': '9' } }]);
    expect(other).toBeLessThan(500);
  });
});
