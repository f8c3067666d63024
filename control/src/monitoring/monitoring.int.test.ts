import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

const run = promisify(execFile);
const MONITORING = fileURLToPath(new URL('../../monitoring/', import.meta.url));
/** Debian's `prometheus` package. */
const PROMTOOL = '/usr/bin/promtool';

/** Metric names an expression uses: ours and the process metrics; `up` is Prometheus' own. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:kernex|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''));
}

describe('monitoring (DESIGN §10)', () => {
  let database: TestDatabase;
  let dir: string;
  let server: ServerProcess;
  let url: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-monitoring-'));
    // MQTTS on: the certificate gauge has a value, as in production.
    server = spawnServer({ DATABASE_URL: database.url, KERNEX_DATA_DIR: dir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', KERNEX_MQTTS_PORT: '0', KERNEX_ADMIN_KEY: 'kx_monitoring_test_key' });
    url = `http://127.0.0.1:${(await server.ready).httpPort}`;
  });
  afterAll(async () => {
    if (server && server.proc.exitCode === null) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
    await database?.drop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('ships alerting rules that promtool accepts and whose unit tests pass', async () => {
    const check = await run(PROMTOOL, ['check', 'rules', 'alerts.yml'], { cwd: MONITORING });
    expect(check.stdout).toContain('SUCCESS');
    // promtool exits non-zero (execFile rejects) when any alert test fails.
    const test = await run(PROMTOOL, ['test', 'rules', 'alerts.test.yml'], { cwd: MONITORING });
    expect(test.stdout).toContain('SUCCESS');
  });

  it('covers what operators must be woken for', async () => {
    const rules = await fs.readFile(path.join(MONITORING, 'alerts.yml'), 'utf8');
    const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    // The list: offline share, aborted deployment, stuck writer, refused packets, readiness, TLS expiry.
    for (const a of ['KernexDevicesOffline', 'KernexDeploymentAborted', 'KernexWriterStuck', 'KernexRefusedPacketsSpike', 'KernexNotReady', 'KernexTlsCertificateExpiring']) {
      expect(alerts).toContain(a);
    }
  });

  it('exposes from start every metric the rules and the dashboard use', async () => {
    const rules = await fs.readFile(path.join(MONITORING, 'alerts.yml'), 'utf8');
    const dashboard = JSON.parse(await fs.readFile(path.join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const used = new Set([...metricNames(rules), ...dashboard.panels.flatMap((p) => p.targets.flatMap((t) => metricNames(t.expr)))]);
    expect(used.size).toBeGreaterThan(10);
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const exposed = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const missing = [...used].filter((name) => !exposed.has(name));
    expect(missing).toEqual([]);
    expect(text).toMatch(/^kernex_ready 1$/m);
    expect(text).toMatch(/^kernex_devices\{status="accepted"\} 0$/m);
    expect(text).toMatch(/^kernex_deployments\{status="aborted"\} 0$/m);
    expect(text).toMatch(/^kernex_writer_backlog\{writer="telemetry"\} 0$/m);
    const notAfter = Number(/^kernex_tls_certificate_expiry_timestamp_seconds\{cert="server"\} (\d+)$/m.exec(text)?.[1]);
    expect(notAfter * 1000).toBeGreaterThan(Date.now() + 300 * 24 * 3600 * 1000); // the self-made certificate lasts 397 days
  });

  it('accepts a sane X-Request-Id, echoes it, and puts it on every log line of that request', async () => {
    const res = await fetch(`${url}/api/v1/devices`, { headers: { 'x-request-id': 'trace-0123.abc' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('x-request-id')).toBe('trace-0123.abc');
    await expect.poll(() => server.logs.some((l) => l.reqId === 'trace-0123.abc' && (l.res as { statusCode?: number } | undefined)?.statusCode === 401)).toBe(true);
    const mine = server.logs.filter((l) => l.reqId === 'trace-0123.abc');
    expect(mine.length).toBeGreaterThanOrEqual(2); // the request, the refusal, the response
    // No line about this request lacks the id.
    const strays = server.logs.filter((l) => (l.req as { url?: string } | undefined)?.url === '/api/v1/devices' && l.reqId !== 'trace-0123.abc');
    expect(strays).toEqual([]);
  });

  it('makes an id when none or an unusable one is sent', async () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    const none = await fetch(`${url}/healthz`);
    expect(none.headers.get('x-request-id')).toMatch(uuid);
    const hostile = await fetch(`${url}/healthz`, { headers: { 'x-request-id': `${'x'.repeat(300)}` } });
    expect(hostile.headers.get('x-request-id')).toMatch(uuid);
    const spaced = await fetch(`${url}/healthz`, { headers: { 'x-request-id': 'a b "c"' } });
    expect(spaced.headers.get('x-request-id')).toMatch(uuid);
    expect(none.headers.get('x-request-id')).not.toBe(hostile.headers.get('x-request-id'));
  });
});
