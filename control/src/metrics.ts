import { X509Certificate } from 'node:crypto';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { FleetStatsStore } from './store/fleet-stats.pg.js';
import { isStalled, STALL_AFTER_MS, type WriterName, type WriterState } from './services/batch-writer.js';

/**
 * Every Prometheus metric of the server is defined here, once; each part is handed its own
 * group (constructor injection). Parts never create metrics themselves.
 */
export interface ServerMetrics {
  registry: Registry;
  telemetry: TelemetryMetrics;
  writers: WriterMetrics;
  events: EventMetrics;
  retention: RetentionMetrics;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** Requests refused with 429, by which limit refused them. */
  httpRateLimited: Counter<'scope'>;
  /** Connections closed because a client was too slow, by which limit (headers, body). */
  httpSlowClients: Counter<'limit'>;
  /** Bundle bytes sent, by kind: full bundles and deltas (DESIGN §4). */
  bundleBytesServed: Counter<'kind'>;
}

/**
 * The server's metrics but the orchestrator's ({@link createOrchestratorMetrics}), whose gauge
 * reads the database: made before the database is open, so storage errors at start count.
 */
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
  return {
    registry,
    httpDuration,
    httpRateLimited,
    httpSlowClients,
    bundleBytesServed,
    telemetry: createTelemetryMetrics(registry),
    writers: createWriterMetrics(registry),
    events: createEventMetrics(registry),
    retention: createRetentionMetrics(registry),
  };
}

/** Prometheus metrics of the telemetry ingest. */
export interface TelemetryMetrics {
  persisted: Counter;
  dropped: Counter<'reason'>;
  flushSeconds: Histogram;
}

export function createTelemetryMetrics(registry: Registry): TelemetryMetrics {
  return {
    persisted: new Counter({ name: 'kernex_telemetry_persisted_total', help: 'Telemetry samples written to the database', registers: [registry] }),
    dropped: new Counter({
      name: 'kernex_telemetry_dropped_total',
      help: 'Telemetry samples dropped by the server, by reason (backlog: the database was away too long; unknown_device; refused: PostgreSQL refused the sample)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    flushSeconds: new Histogram({
      name: 'kernex_telemetry_flush_seconds',
      help: 'Time to write one batch of telemetry',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
  };
}

/** The writers' shared metrics: backlog, stalled, refused rows. */
export interface WriterMetrics {
  refused: Counter<'writer'>;
  /** Registers a writer; its gauges are read at each scrape. */
  watch(name: WriterName, state: () => WriterState): void;
  /** Per writer: true while it keeps up, false while it is stalled (`/readyz`). */
  healthy(): Record<WriterName, boolean>;
}

export function createWriterMetrics(registry: Registry, stallAfterMs = STALL_AFTER_MS): WriterMetrics {
  const writers = new Map<WriterName, () => WriterState>();
  const refused = new Counter({
    name: 'kernex_writer_rows_refused_total',
    help: 'Rows PostgreSQL refused (e.g. NUL or a lone surrogate in a string), set apart from their batch and dropped, by writer',
    labelNames: ['writer'],
    registers: [registry],
  });
  new Gauge({
    name: 'kernex_writer_backlog',
    help: 'Items waiting to be written to the database, by writer',
    labelNames: ['writer'],
    registers: [registry],
    collect() {
      for (const [name, state] of writers) this.labels(name).set(state().backlog);
    },
  });
  new Gauge({
    name: 'kernex_writer_oldest_pending_seconds',
    help: 'Age of the oldest item waiting to be written, by writer (0 when none waits)',
    labelNames: ['writer'],
    registers: [registry],
    collect() {
      const now = Date.now();
      for (const [name, state] of writers) {
        const at = state().oldestAt;
        this.labels(name).set(at === undefined ? 0 : (now - at) / 1000);
      }
    },
  });
  new Gauge({
    name: 'kernex_writer_stalled',
    help: '1 while a writer has work and cannot make progress (database away, or its oldest item too old), by writer',
    labelNames: ['writer'],
    registers: [registry],
    collect() {
      for (const [name, state] of writers) this.labels(name).set(isStalled(state(), stallAfterMs) ? 1 : 0);
    },
  });
  return {
    refused,
    watch: (name, state) => {
      writers.set(name, state);
      refused.labels(name).inc(0);
    },
    healthy: () => {
      const out = {} as Record<WriterName, boolean>;
      for (const [name, state] of writers) out[name] = !isStalled(state(), stallAfterMs);
      return out;
    },
  };
}

/** Metrics of the execution event writer. */
export interface EventMetrics {
  refused: Counter<'reason'>;
  commitSeconds: Histogram;
}

export function createEventMetrics(registry: Registry): EventMetrics {
  return {
    refused: new Counter({
      name: 'kernex_execution_events_refused_total',
      help: 'Execution events refused (and acknowledged), by reason: unknown_execution, transition, unstorable',
      labelNames: ['reason'],
      registers: [registry],
    }),
    commitSeconds: new Histogram({
      name: 'kernex_execution_events_commit_seconds',
      help: 'Time to commit one batch of execution events',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}

/** Metrics of the orchestrator. */
export interface OrchestratorMetrics {
  published: Counter<'type'>;
  /** Commands the orchestrator made that failed the command schema, so were not sent. */
  refused: Counter<'type'>;
}

/**
 * `executionTotals` answers executions across all deployments by state, or undefined while the
 * database is away (the gauge keeps its last values).
 */
export function createOrchestratorMetrics(registry: Registry, executionTotals: () => Promise<Record<string, number> | undefined>): OrchestratorMetrics {
  new Gauge({
    name: 'kernex_executions',
    help: 'Executions by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      // With the database away, /metrics still answers (writers' stalled gauges): keep the last values.
      const totals = await executionTotals();
      if (!totals) return;
      this.reset();
      for (const [state, n] of Object.entries(totals)) this.labels(state).set(n);
    },
  });
  return {
    published: new Counter({ name: 'kernex_commands_published_total', help: 'Commands published to devices, by type', labelNames: ['type'], registers: [registry] }),
    refused: new Counter({ name: 'kernex_commands_refused_total', help: 'Commands not sent because they failed the command schema, by type', labelNames: ['type'], registers: [registry] }),
  };
}

/** The metrics of retention and of the bundle storage. */
export interface RetentionMetrics {
  bundlesPruned: Counter;
  orphansRemoved: Counter;
  blobsMissing: Gauge;
  historyPruned: Counter<'kind'>;
  failures: Counter<'task'>;
  /** Storage operations that failed (the API answered 503), by operation. */
  storageErrors: Counter<'op'>;
  /** Bundle uploads that ended, stored or refused, counted once their temp file is gone. */
  uploads: Counter<'outcome'>;
}

export function createRetentionMetrics(registry: Registry): RetentionMetrics {
  const registers = [registry];
  return {
    bundlesPruned: new Counter({ name: 'kernex_bundles_pruned_total', help: 'Bundle versions deleted by retention (KERNEX_BUNDLE_KEEP), row and blob', registers }),
    orphansRemoved: new Counter({ name: 'kernex_orphan_blobs_removed_total', help: 'Stored blobs that no bundle row named, removed by the sweep', registers }),
    blobsMissing: new Gauge({ name: 'kernex_bundle_blobs_missing', help: 'Bundle rows whose blob was missing from storage at the last sweep', registers }),
    historyPruned: new Counter({
      name: 'kernex_history_pruned_total',
      help: 'History rows deleted by retention: ended deployments (with their executions) and audit entries',
      labelNames: ['kind'],
      registers,
    }),
    failures: new Counter({ name: 'kernex_retention_failures_total', help: 'Background retention runs that failed, by task (retried at the next run)', labelNames: ['task'], registers }),
    storageErrors: new Counter({ name: 'kernex_bundle_storage_errors_total', help: 'Bundle storage operations that failed, by operation', labelNames: ['op'], registers }),
    uploads: new Counter({
      name: 'kernex_bundle_uploads_total',
      help: 'Bundle uploads that ended (their temp file removed), by outcome: stored or refused (refused, conflicting, cut off by the client)',
      labelNames: ['outcome'],
      registers,
    }),
  };
}

/** States named by the contract (DESIGN §2, §5): each is exposed, at 0 when none, so rules never see a missing series. */
const DEVICE_STATUSES = ['pending', 'accepted', 'rejected', 'decommissioned'];
const DEPLOYMENT_STATUSES = ['running', 'completed', 'aborted', 'cancelled'];

export interface ServerGaugeDeps {
  ready(): Promise<boolean>;
  fleet: FleetStatsStore;
  /** PEM of the certificate the server serves (MQTTS/HTTPS), when TLS is on. */
  tlsCertPem?: string;
}

/**
 * The gauges the alerting rules and the dashboard need (control/monitoring/) beyond the
 * writers' own (services/batch-writer.ts), all
 * registered at start so their names are in /metrics from the first scrape. Values
 * that live in the database are read at scrape time.
 */
export function registerServerGauges(registry: Registry, deps: ServerGaugeDeps): void {
  new Gauge({
    name: 'kernex_ready',
    help: '1 when /readyz answers ready (started, database answers, broker listens, writers keep up), else 0',
    registers: [registry],
    async collect() {
      this.set((await deps.ready().catch(() => false)) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'kernex_devices',
    help: 'Registered devices by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await deps.fleet.devicesByStatus().catch(() => undefined);
      if (!counts) return;
      for (const s of new Set([...DEVICE_STATUSES, ...Object.keys(counts)])) this.labels(s).set(counts[s] ?? 0);
    },
  });
  new Gauge({
    name: 'kernex_deployments',
    help: 'Deployments by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await deps.fleet.deploymentsByStatus().catch(() => undefined);
      if (!counts) return;
      for (const s of new Set([...DEPLOYMENT_STATUSES, ...Object.keys(counts)])) this.labels(s).set(counts[s] ?? 0);
    },
  });
  const expiry = new Gauge({
    name: 'kernex_tls_certificate_expiry_timestamp_seconds',
    help: "notAfter of the server's TLS certificate (MQTTS/HTTPS), Unix seconds; absent when TLS is off",
    labelNames: ['cert'],
    registers: [registry],
  });
  if (deps.tlsCertPem) expiry.labels('server').set(Math.floor(new Date(new X509Certificate(deps.tlsCertPem).validTo).getTime() / 1000));
}

/** The metrics of this node's place in a cluster (DESIGN §8): lease, sweep, leadership. */
export interface ClusterNodeMetrics {
  swept: Counter;
  failures: Counter;
  lapses: Counter;
  leader: Gauge;
}

export function createClusterNodeMetrics(registry: Registry): ClusterNodeMetrics {
  const registers = [registry];
  return {
    swept: new Counter({ name: 'kernex_cluster_devices_swept_total', help: 'Devices marked offline because their node’s lease ended', registers }),
    failures: new Counter({ name: 'kernex_cluster_lease_failures_total', help: 'Lease renewals (and sweeps) that failed', registers }),
    lapses: new Counter({ name: 'kernex_cluster_lease_lapses_total', help: 'Renewals that found this node’s lease already ended', registers }),
    leader: new Gauge({ name: 'kernex_cluster_leader', help: '1 while this node runs the orchestrator', registers }),
  };
}

/** The metrics of the Redis bus between nodes (DESIGN §8). */
export interface ClusterBusMetrics {
  sent: Counter<'kind'>;
  received: Counter<'kind'>;
  dropped: Counter<'reason'>;
  up: Gauge;
  /** Commands (`kx/{id}/cmd`) handed to Redis: to the owner's node, to every node, or sent on by a node that no longer holds the device. */
  commandsSent: Counter<'route'>;
  /** Commands from other nodes: as the device's owner, or with every node. */
  commandsReceived: Counter<'route'>;
}

export function createClusterBusMetrics(registry: Registry, ownersKnown: () => number): ClusterBusMetrics {
  const registers = [registry];
  new Gauge({
    name: 'kernex_cluster_device_owners',
    help: 'Devices whose node this node knows (commands to them cross Redis to that node only)',
    registers,
    collect() {
      this.set(ownersKnown());
    },
  });
  return {
    commandsSent: new Counter({ name: 'kernex_cluster_commands_sent_total', help: 'Commands this node handed to Redis, by route (owner, broadcast, forwarded)', labelNames: ['route'], registers }),
    commandsReceived: new Counter({ name: 'kernex_cluster_commands_received_total', help: 'Commands this node received from other nodes, by route (owner, broadcast, forwarded)', labelNames: ['route'], registers }),
    sent: new Counter({ name: 'kernex_cluster_bus_sent_total', help: 'Messages this node sent to the other nodes over Redis, by kind', labelNames: ['kind'], registers }),
    received: new Counter({ name: 'kernex_cluster_bus_received_total', help: 'Messages this node received from the other nodes over Redis, by kind', labelNames: ['kind'], registers }),
    dropped: new Counter({ name: 'kernex_cluster_bus_dropped_total', help: 'Messages not carried between nodes (healed from PostgreSQL), by reason', labelNames: ['reason'], registers }),
    up: new Gauge({ name: 'kernex_cluster_redis_up', help: '1 while both Redis connections of this node are ready', registers }),
  };
}
