import { X509Certificate } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';
import type { FleetStatsStore } from '../store/fleet-stats.pg.js';

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
