import { cmdTopic } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { DeploymentsStore } from '../store/deployments.pg.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { connectDevice, metric, nextMessage } from '../test-support/mqtt.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/** A node heals its connected devices from PostgreSQL when Redis comes back (DESIGN §8), in batches. */
describe('healing after a Redis outage', () => {
  let redis: TestRedis;
  let server: TestServer;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({ KERNEX_REDIS_URL: redis.url, KERNEX_NODE_ID: 'heal-node' });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await server?.stop();
    await redis?.stop();
  });

  it('sends every connected device what it is owed again, with one look-up for all of them', async () => {
    const token = await enrollmentToken(server.httpUrl, server.adminHeaders, 10);
    const devices: TestDevice[] = [];
    for (let i = 0; i < 3; i++) {
      const d = await makeDevice();
      expect((await register(server.httpUrl, d, { enrollmentToken: token })).status).toBe(201);
      const c = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, d);
      await c.subscribeAsync(cmdTopic(d.id), { qos: 1 });
      devices.push(d);
      clients.push(c);
    }
    const upload = await fetch(`${server.httpUrl}/api/v1/bundles`, {
      method: 'POST',
      body: await makeBundle({ version: '1.0.0' }),
      headers: { ...server.adminHeaders, 'content-type': 'application/gzip' },
    });
    expect(upload.status).toBe(201);
    const { id: bundleId } = (await upload.json()) as { id: string };
    const firstSend = clients.map((c) => nextMessage(c));
    const created = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds: devices.map((d) => d.id) } });
    expect(created.status).toBe(201);
    await Promise.all(firstSend);

    // Counts the look-ups of what devices are owed (the store's own method, on the real database).
    const lookups: number[] = [];
    const owedTo = DeploymentsStore.prototype.owedTo;
    DeploymentsStore.prototype.owedTo = function (db, deviceIds) {
      lookups.push(deviceIds.length);
      return owedTo.call(this, db, deviceIds);
    };
    try {
      await redis.stop();
      await expect.poll(() => metric(server.httpUrl, 'kernex_cluster_redis_up')).toBe(0);
      const again = clients.map((c) => nextMessage(c));
      await redis.start();
      const sent = await Promise.all(again);
      for (const [i, [topic, payload]] of sent.entries()) {
        expect(topic).toBe(cmdTopic(devices[i]!.id));
        expect(JSON.parse(payload.toString('utf8'))).toMatchObject({ type: 'deploy', bundle: { id: bundleId } });
      }
      expect(lookups).toEqual([3]);
    } finally {
      DeploymentsStore.prototype.owedTo = owedTo;
    }
  });
});
