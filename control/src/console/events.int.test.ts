import { cmdTopic, eventsTopic, type Command } from '@kernex/shared';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authPlugin } from '../auth/auth.plugin.js';
import { eventsRoutes } from '../routes/events.routes.js';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { connectDevice } from '../test-support/mqtt.js';
import { openSse, type SseClient } from '../test-support/sse.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

describe('GET /api/v1/events (DESIGN §6)', () => {
  let server: TestServer;
  let viewer: string;
  const streams: SseClient[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    viewer = (await api('POST', `${server.httpUrl}/api/v1/api-keys`, server.adminHeaders, { name: 'watcher', role: 'viewer' })).body.key;
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    await server?.stop();
  });

  const open = async (headers: Record<string, string>): Promise<SseClient> => {
    const s = await openSse(`${server.httpUrl}/api/v1/events`, headers);
    streams.push(s);
    return s;
  };

  it('refuses a caller without credentials', async () => {
    const res = await fetch(`${server.httpUrl}/api/v1/events`);
    expect(res.status).toBe(401);
  });

  it("streams a device's presence and an execution's state to a viewer", async () => {
    const stream = await open({ authorization: `Bearer ${viewer}` });
    expect(stream.status).toBe(200);
    await stream.waitFor((e) => e.event === 'ready');

    const token = await enrollmentToken(server.httpUrl, server.adminHeaders, 1);
    const device = await makeDevice();
    await register(server.httpUrl, device, { enrollmentToken: token });
    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, device);
    const online = await stream.waitFor((e) => e.event === 'device' && e.data.id === device.id && e.data.online === true);
    expect(online.data.online).toBe(true);

    const commands: Command[] = [];
    const got = new Promise<void>((resolve) => client.on('message', (_t, p) => {
      commands.push(JSON.parse(p.toString()) as Command);
      resolve();
    }));
    await client.subscribeAsync(cmdTopic(device.id), { qos: 1 });
    const upload = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ name: 'app', version: '1.0.0' }), headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    const bundleId = ((await upload.json()) as { id: string }).id;
    const dep = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds: [device.id] } });
    expect(dep.status).toBe(201);
    await got;
    const executionId = commands[0]!.executionId;
    await client.publishAsync(eventsTopic(device.id), JSON.stringify({ executionId, state: 'rolled_back', error: 'health check failed: exit 3', ts: Date.now() }), { qos: 1 });

    const exec = await stream.waitFor((e) => e.event === 'execution' && e.data.id === executionId && e.data.state === 'rolled_back');
    expect(exec.data).toMatchObject({ deploymentId: dep.body.id, deviceId: device.id, error: 'health check failed: exit 3' });
    const deployment = await stream.waitFor((e) => e.event === 'deployment' && e.data.id === dep.body.id && e.data.status === 'completed');
    expect(deployment.data.counts.rolled_back).toBe(1);

    await client.endAsync();
    await stream.waitFor((e) => e.event === 'device' && e.data.id === device.id && e.data.online === false);
  });

  it('keeps a quiet stream open past the HTTP idle timeout with heartbeats', async () => {
    const quick = await startTestServer({ KERNEX_HTTP_IDLE_TIMEOUT_MS: '1000' });
    try {
      const s = await openSse(`${quick.httpUrl}/api/v1/events`, quick.adminHeaders);
      streams.push(s);
      await s.waitFor((e) => e.event === 'ready');
      // Four heartbeats at half the idle timeout: two idle timeouts have passed, and the stream is open.
      await s.waitForComments(4);
      const device = await makeDevice();
      await register(quick.httpUrl, device, { enrollmentToken: await enrollmentToken(quick.httpUrl, quick.adminHeaders, 1) });
      const client = await connectDevice(`mqtt://127.0.0.1:${quick.mqttPort}`, device);
      await s.waitFor((e) => e.event === 'device' && e.data.id === device.id && e.data.online === true);
      await client.endAsync();
    } finally {
      await quick.stop();
    }
  });

  it('closes an open stream at its next heartbeat once the session has ended', async () => {
    // The same route on its own app with a short heartbeat, on the server's sessions and bus.
    const app = Fastify();
    await app.register(authPlugin, { apiKeys: server.services.apiKeys, sessions: server.services.sessions });
    await app.register(eventsRoutes, { bus: server.services.bus, apiKeys: server.services.apiKeys, sessions: server.services.sessions, heartbeatMs: 100 });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const signIn = await fetch(`${server.httpUrl}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiKey: viewer }) });
      const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
      const own = await openSse(`${url}/api/v1/events`, { cookie });
      streams.push(own);
      await own.waitFor((e) => e.event === 'ready');
      expect((await fetch(`${server.httpUrl}/api/v1/session`, { method: 'DELETE', headers: { cookie, 'x-kernex-csrf': '1' } })).status).toBe(204);
      expect(own.status).toBe(200);
      await own.ended;
    } finally {
      await app.close();
    }
  });

  it('serves a console session cookie, and refuses its reconnect after sign-out', async () => {
    const signIn = await fetch(`${server.httpUrl}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiKey: viewer }) });
    const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
    const stream = await open({ cookie });
    expect(stream.status).toBe(200);
    await stream.waitFor((e) => e.event === 'ready');
    expect((await fetch(`${server.httpUrl}/api/v1/session`, { method: 'DELETE', headers: { cookie, 'x-kernex-csrf': '1' } })).status).toBe(204);
    // A reconnect is refused.
    expect((await fetch(`${server.httpUrl}/api/v1/events`, { headers: { cookie } })).status).toBe(401);
  });
});
