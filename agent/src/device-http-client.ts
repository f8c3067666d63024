import http from 'node:http';
import https from 'node:https';

/** What a device-side HTTP call answered. */
export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Options of one request. */
export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Aborting destroys the request and its response. */
  signal?: AbortSignal;
  /**
   * Longest silence on the socket, ms (default 30 s): before the answer's
   * headers, and (for {@link HttpClient.stream}) between body chunks.
   */
  timeoutMs?: number;
}

/** Options of {@link HttpClient}. */
export interface HttpClientOptions {
  /** CA certificate(s) to trust for https:// instead of the system store (KERNEX_CA_FILE). */
  ca?: Buffer;
}

/**
 * The agent's one HTTP client: every request a device makes (registration,
 * bundle downloads, the simulator's downloads) goes through it, so a pinned
 * CA (KERNEX_CA_FILE, a server that made its own CA) is honoured on every
 * path. node:http(s) rather than fetch: fetch cannot take a CA without an
 * extra dependency, and a streamed body keeps every byte that arrived
 * before a cut link.
 */
export class HttpClient {
  constructor(private readonly opts: HttpClientOptions = {}) {}

  /** The pinned CA, if any (the broker session pins the same one). */
  get ca(): Buffer | undefined {
    return this.opts.ca;
  }

  /**
   * One request; resolves with the response as a stream, whatever its status.
   * Rejects on network errors, TLS errors, an abort, and silence past `timeoutMs`.
   */
  stream(url: string | URL, o: RequestOptions = {}): Promise<http.IncomingMessage> {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return Promise.reject(new Error(`unsupported URL scheme '${u.protocol}'`));
    const secure = u.protocol === 'https:';
    const client = secure ? https : http;
    const timeoutMs = o.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const req = client.request(
        u,
        {
          method: o.method ?? 'GET',
          headers: o.body === undefined ? o.headers : { 'content-length': String(Buffer.byteLength(o.body)), ...o.headers },
          ...(secure && this.opts.ca ? { ca: this.opts.ca } : {}),
          signal: o.signal,
        },
        resolve,
      );
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no data for ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.once('error', reject);
      req.end(o.body);
    });
  }

  /** One request, the whole answer read as text (API calls: small bodies). */
  async text(url: string | URL, o: RequestOptions = {}): Promise<HttpAnswer> {
    const res = await this.stream(url, o);
    const chunks: Buffer[] = [];
    for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
    return { status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') };
  }
}

/** One request through a client with no pinned CA (kept for callers outside a device). */
export function requestText(url: string, opts: RequestOptions & HttpClientOptions = {}): Promise<HttpAnswer> {
  const { ca, ...rest } = opts;
  return new HttpClient({ ca }).text(url, rest);
}
