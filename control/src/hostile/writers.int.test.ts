import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { DeploymentsStore } from '../store/deployments.pg.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { metric } from '../test-support/mqtt.js';
import { startTcpProxy, type TcpProxy } from '../test-support/tcp-proxy.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/**
 * Rows PostgreSQL refuses, put in the same batch as honest rows of other
 * devices, past the broker's own check (straight into each writer, as a
 * value the broker missed would arrive): the honest rows are written, the
 * bad one is counted and dropped, and the writer does not retry it forever.
 */
describe('batched writers with a row PostgreSQL refuses', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let server: TestServer;
  const devices: TestDevice[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    const target = new URL(db.url);
    proxy = await startTcpProxy(Number(target.port));
    target.port = String(proxy.port);
    server = await startTestServer({ DATABASE_URL: target.toString() });
    const token = await enrollmentToken(server.httpUrl, server.adminHeaders, 3);
    for (let i = 0; i < 3; i++) {
      const d = await makeDevice();
      expect((await register(server.httpUrl, d, { enrollmentToken: token })).body.status).toBe('accepted');
      devices.push(d);
    }
  });
  afterAll(async () => {
    await server?.stop();
    await proxy?.close();
    await db?.drop();
  });

  const refused = (writer: string): Promise<number> => metric(server.httpUrl, 'kernex_writer_rows_refused_total', { writer });
  const samples = async (deviceId: string): Promise<unknown[]> =>
    (await api('GET', `${server.httpUrl}/api/v1/devices/${deviceId}/telemetry`, server.adminHeaders)).body.items.map((i: { telemetry: unknown }) => i.telemetry);
  const readyz = async (): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${server.httpUrl}/readyz`);
    return { status: res.status, body: await res.json() };
  };

  it('writes the honest telemetry of other devices and counts the samples holding NUL or a lone surrogate', async () => {
    const [a, b, c] = devices as [TestDevice, TestDevice, TestDevice];
    const before = await refused('telemetry');
    const ingest = server.services.telemetryIngest;
    ingest.add(a.id, { cpu: 1 });
    ingest.add(c.id, { note: 'nul \u0000 here' });
    ingest.add(b.id, { cpu: 2 });
    ingest.add(c.id, { note: 'lone \ud800 surrogate' });
    ingest.add(a.id, { cpu: 3 });
    await ingest.flush();

    expect(await samples(a.id)).toEqual([{ cpu: 1 }, { cpu: 3 }]);
    expect(await samples(b.id)).toEqual([{ cpu: 2 }]);
    expect(await samples(c.id)).toEqual([]);
    expect(await refused('telemetry')).toBe(before + 2);
    expect(ingest.backlog).toBe(0);

    // And the next honest sample of the device that sent the bad ones is written too.
    ingest.add(c.id, { cpu: 4 });
    await ingest.flush();
    expect(await samples(c.id)).toEqual([{ cpu: 4 }]);
  });

  it('writes the presence of other devices and counts a change PostgreSQL refuses', async () => {
    const [a, b] = devices as [TestDevice, TestDevice];
    const before = await refused('presence');
    const presence = server.services.presence;
    const at = new Date();
    presence.record(a.id, true, at);
    presence.record('bad\u0000device', true, at);
    presence.record(b.id, true, at);
    await presence.flush();

    for (const d of [a, b]) expect((await api('GET', `${server.httpUrl}/api/v1/devices/${d.id}`, server.adminHeaders)).body.online).toBe(true);
    expect(await refused('presence')).toBe(before + 1);
    expect(presence.state().backlog).toBe(0);
    presence.record(a.id, false, new Date());
    presence.record(b.id, false, new Date());
    await presence.flush();
  });

  it('stores the honest events of other devices and refuses, counts and settles an event PostgreSQL refuses', async () => {
    const up = await fetch(`${server.httpUrl}/api/v1/bundles`, {
      method: 'POST',
      body: await makeBundle({ name: 'app', version: '1.0.0' }),
      headers: { ...server.adminHeaders, 'content-type': 'application/gzip' },
    });
    const bundleId = ((await up.json()) as { id: string }).id;
    const created = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds: devices.map((d) => d.id) } });
    expect(created.status).toBe(201);
    const store = new DeploymentsStore(server.sql);
    await expect.poll(async () => (await store.executions(server.sql, created.body.id, 10)).every((e) => e.state === 'sent')).toBe(true);
    const executions = await store.executions(server.sql, created.body.id, 10);
    const of = (d: TestDevice) => executions.find((e) => e.deviceId === d.id)!.id;
    const [a, b, c] = devices as [TestDevice, TestDevice, TestDevice];
    const unstorableBefore = await metric(server.httpUrl, 'kernex_execution_events_refused_total', { reason: 'unstorable' });
    const refusedBefore = await refused('events');

    const ts = Date.now();
    const events = server.services.events;
    const outcomes = await Promise.all([
      events.submit(a.id, { executionId: of(a), state: 'received', ts }),
      events.submit(c.id, { executionId: of(c), state: 'failed', error: 'broken \u0000 install', ts }),
      events.submit(b.id, { executionId: of(b), state: 'downloading', ts }),
    ]);

    expect(outcomes).toEqual(['applied', 'refused', 'applied']);
    const states = Object.fromEntries((await store.executions(server.sql, created.body.id, 10)).map((e) => [e.deviceId, e.state]));
    expect(states).toEqual({ [a.id]: 'received', [b.id]: 'downloading', [c.id]: 'sent' });
    expect(await metric(server.httpUrl, 'kernex_execution_events_refused_total', { reason: 'unstorable' })).toBe(unstorableBefore + 1);
    expect(await refused('events')).toBe(refusedBefore + 1);
    expect(events.state().backlog).toBe(0);
  });

  it('shows a writer whose database is away in /readyz and /metrics, and recovers when it returns', async () => {
    const [a] = devices as [TestDevice];
    expect((await readyz()).status).toBe(200);
    expect(await metric(server.httpUrl, 'kernex_writer_stalled', { writer: 'telemetry' })).toBe(0);

    await proxy.cut();
    const ingest = server.services.telemetryIngest;
    ingest.add(a.id, { cpu: 42 });
    await ingest.flush();
    await expect.poll(readyz, { timeout: 20_000 }).toMatchObject({ status: 503, body: { checks: { telemetryWriter: false, presenceWriter: true, eventsWriter: true } } });
    expect(await metric(server.httpUrl, 'kernex_writer_stalled', { writer: 'telemetry' })).toBe(1);
    expect(await metric(server.httpUrl, 'kernex_writer_backlog', { writer: 'telemetry' })).toBe(1);

    await proxy.restore();
    await expect.poll(readyz, { timeout: 20_000 }).toEqual({
      status: 200,
      body: { status: 'ready', checks: { started: true, database: true, broker: true, telemetryWriter: true, presenceWriter: true, eventsWriter: true } },
    });
    expect(await metric(server.httpUrl, 'kernex_writer_stalled', { writer: 'telemetry' })).toBe(0);
    expect(await metric(server.httpUrl, 'kernex_writer_backlog', { writer: 'telemetry' })).toBe(0);
    expect(await samples(a.id)).toContainEqual({ cpu: 42 });
  });
});
