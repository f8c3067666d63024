import { cmdTopic } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { connectDevice } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

// When a node dies its devices reconnect elsewhere all at once, and every SUBSCRIBE heals its
// device from PostgreSQL in a transaction. A heal that held its transaction's connection while
// asking the pool for another (the delta look-up) deadlocked the whole server as soon as as many
// heals ran at once as the pool has connections: nothing else got a connection again.
describe('healing more devices at once than the pool has connections', () => {
  const POOL = 2;
  const DEVICES = 6;
  let server: TestServer;
  let devices: TestDevice[];

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_PG_POOL_SIZE: String(POOL) });
    const token = await enrollmentToken(server.httpUrl, server.adminHeaders, DEVICES);
    devices = await Promise.all(Array.from({ length: DEVICES }, () => makeDevice()));
    for (const d of devices) expect((await register(server.httpUrl, d, { enrollmentToken: token })).body.status).toBe('accepted');
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('sends every reconnecting device its deploy again, and the API still answers', async () => {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ version: '1.0.0' }), headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    expect(res.status).toBe(201);
    const bundleId = ((await res.json()) as { id: string }).id;
    // Offline devices: the executions are dispatched (sent) and owed to each device when it subscribes.
    const created = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds: devices.map((d) => d.id) } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const states = async (): Promise<string[]> => ((await api('GET', `${server.httpUrl}/api/v1/deployments/${id}/executions`, server.adminHeaders)).body.items as Array<{ state: string }>).map((e) => e.state);
    await expect.poll(states, { timeout: 30_000 }).toEqual(Array(DEVICES).fill('sent'));

    // Every device at once, each with a clean session: only the heal from PostgreSQL can bring its command.
    const clients: MqttClient[] = await Promise.all(devices.map((d) => connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, d, { clean: true })));
    try {
      const arrived = clients.map(
        (c, i) =>
          new Promise<string>((resolve) =>
            c.on('message', (topic, payload) => {
              const cmd = JSON.parse(payload.toString()) as { type: string; bundle?: { id: string } };
              if (topic === cmdTopic(devices[i]!.id) && cmd.type === 'deploy' && cmd.bundle?.id === bundleId) resolve(cmd.type);
            }),
          ),
      );
      await Promise.all(clients.map((c, i) => c.subscribeAsync(cmdTopic(devices[i]!.id), { qos: 1 })));
      expect(await Promise.all(arrived)).toEqual(Array(DEVICES).fill('deploy'));
      expect((await api('GET', `${server.httpUrl}/api/v1/deployments/${id}`, server.adminHeaders)).status).toBe(200);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
    }
  });
});
