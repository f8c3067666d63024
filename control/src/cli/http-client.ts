import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MAX_PAGE_LIMIT, type Page } from '../paging.js';
import { ApiError, CliError } from './cli-error.js';

type Query = Record<string, string | number | boolean | undefined>;

export type { Page } from '../paging.js';

const MAX_PAGE = MAX_PAGE_LIMIT;

/** Turns an error body (or anything else a proxy may answer) into one line. */
function apiError(status: number, statusText: string, text: string): ApiError {
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.message === 'string') return new ApiError(status, typeof body.code === 'string' ? body.code : 'HTTP', body.message);
  } catch {
    // not the contract's body: fall through
  }
  return new ApiError(status, 'HTTP', statusText || 'request failed');
}

/** A small client for the Kernex HTTP API; speaks only the contract's paths (DESIGN §6). */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string | undefined,
  ) {}

  private url(path: string, query?: Query): string {
    const u = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { accept: 'application/json', ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}), ...extra };
  }

  private unreachable(err: unknown): CliError {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return new CliError(`cannot reach the Kernex server at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (err as Error).message})`);
  }

  async request<T>(method: string, path: string, opts: { query?: Query; body?: unknown; okStatuses?: number[] } = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url(path, opts.query), {
        method,
        headers: this.headers(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    } catch (err) {
      throw this.unreachable(err);
    }
    const text = await res.text();
    if (!res.ok && !opts.okStatuses?.includes(res.status)) throw apiError(res.status, res.statusText, text);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, { query });
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, { body });
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body });
  }
  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /** Follows `nextCursor` until the list ends or `max` items were collected. */
  async list<T>(path: string, query: Query = {}, max = Infinity): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | undefined;
    do {
      const limit = Math.min(MAX_PAGE, max - items.length);
      const page = await this.get<Page<T>>(path, { ...query, limit, cursor });
      items.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor && items.length < max);
    return items.slice(0, max);
  }

  /**
   * Streams a file as the raw request body (never whole in memory), calling
   * `onProgress` with the bytes sent so far. Uses node:http rather than fetch
   * so the body goes out with a Content-Length and progress follows the socket.
   */
  async upload<T>(path: string, file: string, contentType: string, onProgress: (sent: number, total: number) => void): Promise<T> {
    let size: number;
    try {
      size = (await fs.promises.stat(file)).size;
    } catch (err) {
      throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const url = new URL(this.url(path));
    const mod = url.protocol === 'https:' ? https : http;
    let sent = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        sent += chunk.length;
        onProgress(sent, size);
        cb(null, chunk);
      },
    });
    const req = mod.request(url, { method: 'POST', headers: this.headers({ 'content-type': contentType, 'content-length': String(size) }) });
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
    // The server may answer (e.g. 401, 409) before reading the whole body; its answer is what matters then.
    const sending = pipeline(fs.createReadStream(file), counter, req).catch(() => undefined);
    let res: http.IncomingMessage;
    try {
      res = await response;
    } catch (err) {
      throw this.unreachable({ cause: err });
    }
    let text = '';
    for await (const chunk of res) text += String(chunk);
    await Promise.race([sending, Promise.resolve()]);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw apiError(status, res.statusMessage ?? '', text);
    return (text ? JSON.parse(text) : undefined) as T;
  }
}
