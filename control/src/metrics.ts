import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/** The server's Prometheus registry with process metrics; parts register their own metrics on it. */
export interface ServerMetrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** Requests refused with 429, by which limit refused them. */
  httpRateLimited: Counter<'scope'>;
  /** Connections closed because a client was too slow, by which limit (headers, body). */
  httpSlowClients: Counter<'limit'>;
  /** Bundle bytes sent, by kind: full bundles and deltas (DESIGN §4). */
  bundleBytesServed: Counter<'kind'>;
}

export function createMetrics(): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram({
    name: 'kernex_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  const httpRateLimited = new Counter({
    name: 'kernex_http_rate_limited_total',
    help: 'HTTP requests refused with 429, by limit (credential, address, register)',
    labelNames: ['scope'],
    registers: [registry],
  });
  const httpSlowClients = new Counter({
    name: 'kernex_http_slow_clients_total',
    help: 'HTTP connections closed because headers or a JSON body did not arrive in time, by limit (headers, body)',
    labelNames: ['limit'],
    registers: [registry],
  });
  const bundleBytesServed = new Counter({
    name: 'kernex_bundle_bytes_served_total',
    help: 'Bundle bytes sent to devices and clients, by kind (full, delta)',
    labelNames: ['kind'],
    registers: [registry],
  });
  bundleBytesServed.inc({ kind: 'full' }, 0);
  bundleBytesServed.inc({ kind: 'delta' }, 0);
  return { registry, httpDuration, httpRateLimited, httpSlowClients, bundleBytesServed };
}
