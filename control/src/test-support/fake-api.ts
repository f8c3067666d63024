import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request the fake saw. */
export interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

type Handler = (req: SeenRequest, match: RegExpMatchArray) => { status: number; body?: unknown };

/**
 * A hand-written stand-in for parts of the API other issues build (devices,
 * tokens, bundles, deployments), answering by the DESIGN.md contract, so the
 * CLI's requests can be checked path by path before those routes land.
 */
export class FakeApi {
  readonly seen: SeenRequest[] = [];
  private readonly routes: Array<[string, RegExp, Handler]> = [];
  private server = http.createServer((req, res) => void this.handle(req, res));
  url = '';

  on(method: string, pattern: RegExp, handler: Handler): this {
    this.routes.push([method, pattern, handler]);
    return this;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const u = new URL(req.url!, 'http://x');
    const seen: SeenRequest = {
      method: req.method!,
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      headers: req.headers,
      body: Buffer.concat(chunks),
    };
    this.seen.push(seen);
    let answer: { status: number; body?: unknown } = {
      status: 404,
      body: { statusCode: 404, code: 'KX_ROUTE_NOT_FOUND', error: 'Not Found', message: `no route ${seen.method} ${seen.path}` },
    };
    for (const [method, pattern, handler] of this.routes) {
      const m = method === seen.method ? pattern.exec(seen.path) : null;
      if (m) {
        answer = handler(seen, m);
        break;
      }
    }
    res.writeHead(answer.status, answer.body === undefined ? {} : { 'content-type': 'application/json' });
    res.end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
  }
}
