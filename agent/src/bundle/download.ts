import fs from 'node:fs/promises';
import type { Logger } from 'pino';
import type { HttpClient } from '../http-client.js';
import { Backoff } from '../session/backoff.js';
import { DownloadError } from '../errors.js';

/** What to fetch and where to keep it. */
export interface DownloadRequest {
  url: string;
  /** The device's HTTP client (trusts KERNEX_CA_FILE). */
  http: HttpClient;
  /** The partial file; kept between attempts (and agent restarts) so a download resumes. */
  file: string;
  size: number;
  /** The blob's ETag is its sha256 (DESIGN §4); sent as If-Range so a changed blob is fetched whole. */
  sha256: string;
  /** A fresh device JWT (aud kernex-http) for each request. */
  token(): Promise<string>;
  signal?: AbortSignal;
  log: Logger;
  /** Attempts after a broken link before giving up (default 6). */
  attempts?: number;
  /** Longest silence on the socket before an attempt is given up, ms (default 30 s). */
  idleMs?: number;
  /** Called with bytes on disk after each chunk. */
  onProgress?(bytes: number, size: number): void;
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch {
    return 0;
  }
}

/**
 * Fetches a bundle into `file`, resuming after a broken link: each attempt asks
 * for `Range: bytes={what we have}-` with `If-Range: "{sha256}"`, appends a 206,
 * starts over on a 200. Resolves when the file holds `size` bytes; the caller
 * verifies them.
 */
export async function download(req: DownloadRequest): Promise<void> {
  const attempts = req.attempts ?? 6;
  const backoff = new Backoff({ baseMs: 500, capMs: 15_000 });
  let lastErr: unknown;
  let had = await sizeOf(req.file);
  // Attempts that gained bytes do not count: a slow, flaky link still finishes.
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (req.signal?.aborted) throw new DownloadError('cancelled', false);
    try {
      await attemptOnce(req);
      return;
    } catch (err) {
      if (err instanceof DownloadError && !err.retryable) throw err;
      if (req.signal?.aborted) throw new DownloadError('cancelled', false, { cause: err });
      lastErr = err;
      const have = await sizeOf(req.file);
      if (have > had) {
        attempt = 0;
        backoff.reset();
      }
      had = have;
      const waitMs = backoff.next();
      req.log.info({ attempt, have, size: req.size, waitMs, err: (err as Error).message }, 'download interrupted; resuming');
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
  throw new DownloadError(`download failed after ${attempts} attempts: ${(lastErr as Error)?.message ?? 'unknown'}`, false, { cause: lastErr });
}

async function attemptOnce(req: DownloadRequest): Promise<void> {
  let have = await sizeOf(req.file);
  if (have > req.size) {
    await fs.rm(req.file, { force: true });
    have = 0;
  }
  if (have === req.size && req.size > 0) return;

  const headers: Record<string, string> = { authorization: `Bearer ${await req.token()}` };
  if (have > 0) {
    headers.range = `bytes=${have}-`;
    headers['if-range'] = `"${req.sha256}"`;
  }
  const res = await req.http.stream(req.url, { headers, signal: req.signal, timeoutMs: req.idleMs ?? 30_000 });
  const status = res.statusCode ?? 0;
  if (status === 416) {
    // What we hold does not fit this blob: start over.
    res.resume();
    await fs.rm(req.file, { force: true });
    throw new DownloadError('range refused; starting over', true);
  }
  if (status !== 200 && status !== 206) {
    let text = '';
    for await (const c of res) text = (text + String(c)).slice(0, 300);
    const retryable = status >= 500 || status === 429 || status === 401;
    throw new DownloadError(`server answered ${status}: ${text}`, retryable);
  }
  const append = status === 206;
  if (append) {
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers['content-range'] ?? '');
    if (!range || Number(range[1]) !== have) {
      res.destroy();
      await fs.rm(req.file, { force: true });
      throw new DownloadError(`unexpected content-range '${res.headers['content-range']}'`, true);
    }
  }
  let written = append ? have : 0;
  // Each chunk is on disk before the next is read: whatever arrived before a cut is kept.
  const handle = await fs.open(req.file, append ? 'a' : 'w', 0o600);
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      written += chunk.length;
      if (written > req.size) {
        res.destroy();
        throw new DownloadError(`server sent more than the ${req.size} bytes announced`, false);
      }
      await handle.write(chunk);
      req.onProgress?.(written, req.size);
    }
  } finally {
    await handle.close();
  }
  if (written !== req.size) throw new DownloadError(`download ended at ${written} of ${req.size} bytes`, true);
}
