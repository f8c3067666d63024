import mqtt from 'mqtt';
import { telemetryTopic } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

describe('telemetry history and latest values', () => {
  let server: TestServer;
  let url: string;
  let viewer: Record<string, string>;
  let device: TestDevice;
  const t0 = Date.parse('2026-01-01T00:00:00Z');

  beforeAll(async () => {
    server = await startTestServer();
    url = server.httpUrl;
    viewer = { authorization: `Bearer ${(await server.services.apiKeys.create('v', 'viewer')).key}` };
    device = await makeDevice();
    await register(url, device);
    const ingest = server.services.telemetryIngest;
    // Five samples a minute apart, two of them in the same instant, plus one for an unknown device.
    for (let i = 0; i < 5; i++) ingest.add(device.id, { cpu: i, up: 100 + i }, new Date(t0 + Math.min(i, 3) * 60_000));
    ingest.add('ffffffffffffffffffffffff', { cpu: 1 }, new Date(t0));
    await ingest.flush();
  });
  afterAll(async () => {
    await server?.stop();
  });
  const refusedTotal = async (): Promise<number> => {
    const text = await (await fetch(`${url}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith('kernex_mqtt_refused_total{'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  };

  it('pages a device history in time order without skipping or repeating', async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { status: number; body: { items: Array<{ at: string; telemetry: { cpu: number } }>; nextCursor: string | null } } = await api(
        'GET',
        `${url}/api/v1/devices/${device.id}/telemetry?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        viewer,
      );
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((i) => i.telemetry.cpu));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(pages).toBe(3);
  });

  it('pages newest first with order=desc, without skipping or repeating, within from and to', async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res: { status: number; body: { items: Array<{ at: string; telemetry: { cpu: number } }>; nextCursor: string | null } } = await api(
        'GET',
        `${url}/api/v1/devices/${device.id}/telemetry?order=desc&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        viewer,
      );
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((i) => i.telemetry.cpu));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([4, 3, 2, 1, 0]);
    const from = new Date(t0 + 60_000).toISOString();
    const ranged = await api('GET', `${url}/api/v1/devices/${device.id}/telemetry?order=desc&from=${from}&limit=1`, viewer);
    expect(ranged.body.items.map((i: { telemetry: { cpu: number } }) => i.telemetry.cpu)).toEqual([4]);
    expect((await api('GET', `${url}/api/v1/devices/${device.id}/telemetry?order=newest`, viewer)).status).toBe(400);
  });

  it('filters by from (included) and to (excluded)', async () => {
    const from = new Date(t0 + 60_000).toISOString();
    const to = new Date(t0 + 3 * 60_000).toISOString();
    const res = await api('GET', `${url}/api/v1/devices/${device.id}/telemetry?from=${from}&to=${to}`, viewer);
    expect(res.body.items.map((i: { telemetry: { cpu: number } }) => i.telemetry.cpu)).toEqual([1, 2]);
    expect(res.body.items[0].at).toBe(from);
    expect(res.body.nextCursor).toBeNull();
  });

  it('shows the newest sample on the device resource', async () => {
    const res = await api('GET', `${url}/api/v1/devices/${device.id}`, viewer);
    expect(res.body.telemetry).toMatchObject({ up: expect.any(Number) });
    expect([103, 104]).toContain(res.body.telemetry.up);
    expect(res.body.telemetryAt).toBe(new Date(t0 + 3 * 60_000).toISOString());
  });

  it('counts samples of unknown devices as dropped instead of failing the batch', async () => {
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/kernex_telemetry_dropped_total\{reason="unknown_device"\} 1/);
    expect(metrics).toMatch(/kernex_telemetry_persisted_total 5/);
  });

  it('answers 404 for an unknown device and 400 naming a bad query', async () => {
    const unknown = await api('GET', `${url}/api/v1/devices/ffffffffffffffffffffffff/telemetry`, viewer);
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('KX_NOT_FOUND');
    const badCursor = await api('GET', `${url}/api/v1/devices/${device.id}/telemetry?cursor=bm9wZQ`, viewer);
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.message).toMatch(/cursor/);
    const badFrom = await api('GET', `${url}/api/v1/devices/${device.id}/telemetry?from=yesterday`, viewer);
    expect(badFrom.status).toBe(400);
    expect(badFrom.body.message).toMatch(/from/);
    const badLimit = await api('GET', `${url}/api/v1/devices/${device.id}/telemetry?limit=0`, viewer);
    expect(badLimit.status).toBe(400);
  });

  it('needs an API key', async () => {
    const res = await api('GET', `${url}/api/v1/devices/${device.id}/telemetry`, {});
    expect(res.status).toBe(401);
  });

  it('drops and counts malformed and oversized telemetry from a real device, and keeps the valid one', async () => {
    const token = await api('POST', `${url}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 1, expiresInS: 600 });
    const d = await makeDevice();
    await register(url, d, { enrollmentToken: token.body.token });
    const refusedBefore = await refusedTotal();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, {
      clientId: d.id,
      username: d.id,
      password: await d.jwt('kernex-mqtt'),
      reconnectPeriod: 0,
    });
    try {
      const topic = telemetryTopic(d.id);
      await client.publishAsync(topic, 'not json', { qos: 1 });
      await client.publishAsync(topic, JSON.stringify({ cpu: 250 }), { qos: 1 });
      await client.publishAsync(topic, JSON.stringify({ note: 'x'.repeat(20_000) }), { qos: 1 });
      await client.publishAsync(topic, JSON.stringify({ cpu: 12.5, v: '0.1.0' }), { qos: 1 });
    } finally {
      await client.endAsync();
    }
    await expect.poll(async () => (await api('GET', `${url}/api/v1/devices/${d.id}`, viewer)).body.telemetry, { timeout: 15_000 }).toEqual({ cpu: 12.5, v: '0.1.0' });
    const history = await api('GET', `${url}/api/v1/devices/${d.id}/telemetry`, viewer);
    expect(history.body.items.map((i: { telemetry: unknown }) => i.telemetry)).toEqual([{ cpu: 12.5, v: '0.1.0' }]);
    expect((await refusedTotal()) - refusedBefore).toBe(3);
  });

  it('prunes samples older than the retention and keeps the rest', async () => {
    const other = await makeDevice();
    await register(url, other);
    const now = Date.now();
    server.services.telemetryIngest.add(other.id, { cpu: 1 }, new Date(now - 8 * 86_400_000));
    server.services.telemetryIngest.add(other.id, { cpu: 2 }, new Date(now - 6 * 86_400_000));
    await server.services.telemetryIngest.flush();
    const pruned = await server.services.telemetry.prune(new Date(now));
    expect(pruned).toBeGreaterThanOrEqual(1);
    const res = await api('GET', `${url}/api/v1/devices/${other.id}/telemetry`, viewer);
    expect(res.body.items.map((i: { telemetry: { cpu: number } }) => i.telemetry.cpu)).toEqual([2]);
  });
});
