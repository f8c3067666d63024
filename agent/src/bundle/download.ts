import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { HttpClient } from '../device-http-client.js';
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
  /** Waits between attempts (tests); default a timer that the signal ends early. */
  wait?(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * Longest wait a `Retry-After` is honoured for, ms. A server that asks for more
 * (or a broken one) gets the next attempt then; the execution's timeout bounds
 * the whole download anyway.
 */
export const MAX_RETRY_AFTER_MS = 10 * 60_000;

/**
 * A `Retry-After` header (RFC 9110 §10.2.3: seconds, or an HTTP date) as ms
 * from `now`, within [0, MAX_RETRY_AFTER_MS]; undefined when absent or unreadable.
 */
export function retryAfterMs(header: string | undefined, now = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  const ms = /^\d+$/.test(text) ? Number(text) * 1000 : /[a-z]/i.test(text) ? Date.parse(text) - now : Number.NaN;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

const timerWait = (ms: number, signal?: AbortSignal): Promise<void> => sleep(ms, undefined, { signal }).catch(() => undefined);

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
      // The server's Retry-After (a 503 while its storage is away, a 429) when it asks for longer than the backoff.
      const asked = err instanceof DownloadError ? err.retryAfterMs : undefined;
      const waitMs = Math.max(backoff.next(), asked ?? 0);
      req.log.info({ attempt, have, size: req.size, waitMs, retryAfterMs: asked, err: (err as Error).message }, 'download interrupted; resuming');
      await (req.wait ?? timerWait)(waitMs, req.signal);
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
    const after = status === 503 || status === 429 ? retryAfterMs(res.headers['retry-after']) : undefined;
    throw new DownloadError(`server answered ${status}: ${text}`, retryable, { retryAfterMs: after });
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
