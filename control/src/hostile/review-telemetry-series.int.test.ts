import { telemetryTopic } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { connectDevice } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

// Hostile input is normal input (issue 10): numbers a device may send within
// the telemetry schema (non-negative, unbounded) must not make the console's
// series a 500 ("value out of range: overflow") for as long as they are kept.
describe("a device's telemetry series with extreme numbers", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  const enrolled = async (): Promise<TestDevice> => {
    const token = await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 1, expiresInS: 600 });
    const device = await makeDevice();
    expect((await register(server.httpUrl, device, { enrollmentToken: token.body.token })).body.status).toBe('accepted');
    return device;
  };

  /** Publishes the samples and waits until the API lists them all. */
  const send = async (device: TestDevice, samples: object[]): Promise<void> => {
    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, device);
    try {
      for (const s of samples) await client.publishAsync(telemetryTopic(device.id), JSON.stringify({ ts: Date.now(), ...s }), { qos: 1 });
    } finally {
      await client.endAsync();
    }
    await expect
      .poll(async () => (await api('GET', `${server.httpUrl}/api/v1/devices/${device.id}/telemetry?limit=100`, server.adminHeaders)).body.items.length, { timeout: 30_000 })
      .toBe(samples.length);
  };

  it('answers 200 with finite means', async () => {
    const device = await enrolled();
    await send(device, [
      { mem: [1e308, 1e-300], disk: [1e308, 1e-300], load: [1e308, 1e308, 1e308] },
      { mem: [1e308, 1e308], load: [1e308, 0, 0] },
      { mem: [1e-300, 1e308], disk: [1e-300, 1e308], cpu: 5 },
    ]);
    const res = await api('GET', `${server.httpUrl}/api/v1/devices/${device.id}/telemetry/series?window=1h`, server.adminHeaders);
    expect(res.status).toBe(200);
    const points = res.body.points as Array<Record<string, number | null>>;
    expect(points.reduce((n, p) => n + (p.samples as number), 0)).toBe(3);
    for (const p of points) for (const k of ['cpu', 'mem', 'disk', 'load']) if (p[k] !== null) expect(Number.isFinite(p[k])).toBe(true);
  });

  it('still answers the honest means', async () => {
    const device = await enrolled();
    // One sample: two could fall into two buckets.
    await send(device, [{ cpu: 20, mem: [25, 50], disk: [75, 150], load: [1, 0, 0] }]);
    const res = await api('GET', `${server.httpUrl}/api/v1/devices/${device.id}/telemetry/series?window=7d`, server.adminHeaders);
    expect(res.status).toBe(200);
    const points = res.body.points as Array<{ cpu: number; mem: number; disk: number; load: number; samples: number }>;
    expect(points).toHaveLength(1);
    expect(points[0]).toMatchObject({ cpu: 20, mem: 50, disk: 50, load: 1, samples: 1 });
  });
});
