import http from 'node:http';
import https from 'node:https';

/** What a device-side HTTP call answered. */
export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Options of {@link requestText}. */
export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** CA certificate(s) to trust for https:// instead of the system store (KERNEX_CA_FILE). */
  ca?: Buffer;
  timeoutMs?: number;
}

/**
 * One HTTP(S) request with node:http(s), so a pinned CA (a server that made
 * its own CA) is honoured for the API too, which `fetch` cannot do without
 * an extra dependency. Answers any status; rejects on network errors and
 * after `timeoutMs` (default 30 s).
 */
export function requestText(url: string, opts: RequestOptions = {}): Promise<HttpAnswer> {
  const u = new URL(url);
  const client = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      u,
      {
        method: opts.method ?? 'GET',
        headers: opts.body === undefined ? opts.headers : { 'content-length': String(Buffer.byteLength(opts.body)), ...opts.headers },
        ...(u.protocol === 'https:' && opts.ca ? { ca: opts.ca } : {}),
        timeout: opts.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(opts.body);
  });
}
