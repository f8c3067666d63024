import { cmdTopic, eventsTopic, telemetryTopic, type Command } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { connectDevice } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

describe('the console is served by the server, with a strict CSP (DESIGN §9)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('redirects / to /console/', async () => {
    const res = await fetch(`${server.httpUrl}/`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/console/');
  });

  it("serves the console and its vendored libraries with script-src 'self' and nothing inline or eval'd", async () => {
    for (const p of ['/console/', '/console/app.js', '/console/vendor/preact.js', '/console/vendor/uplot.js', '/console/vendor/htm.js']) {
      const res = await fetch(`${server.httpUrl}${p}`);
      expect(res.status, p).toBe(200);
      const csp = res.headers.get('content-security-policy')!;
      const scriptSrc = csp.split(';').map((d) => d.trim()).find((d) => d.startsWith('script-src'));
      expect(scriptSrc, p).toBe("script-src 'self'");
      expect(csp, p).not.toMatch(/unsafe-inline|unsafe-eval/);
    }
    const html = await (await fetch(`${server.httpUrl}/console/`)).text();
    // No inline script: every <script> has a src on this server.
    expect(html.match(/<script[^>]*>/g)).toEqual(['<script type="module" src="app.js">']);
    expect(html).not.toMatch(/https?:\/\//);
  });

  it('serves no file outside the console directory', async () => {
    for (const p of ['/console/../package.json', '/console/%2e%2e/package.json', '/console/vendor/', '/console/nope.js', '/console/..%2fpackage.json']) {
      const res = await fetch(`${server.httpUrl}${p}`);
      expect(res.status, p).toBe(404);
    }
  });
});

describe('aggregates the console reads, computed by the server', () => {
  let server: TestServer;
  let token: string;
  const clients: MqttClient[] = [];
  const devices: TestDevice[] = [];

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    token = await enrollmentToken(server.httpUrl, server.adminHeaders, 10);
    for (const name of ['kitchen 50%_off', 'garage', 'attic']) {
      const d = await makeDevice();
      await register(server.httpUrl, d, { enrollmentToken: token, name });
      devices.push(d);
    }
    const pending = await makeDevice();
    await register(server.httpUrl, pending, { name: 'stranger' });
  });
  afterAll(async () => {
    for (const c of clients) await c.endAsync();
    await server?.stop();
  });

  const get = async (path: string): Promise<any> => {
    const res = await api('GET', `${server.httpUrl}${path}`, server.adminHeaders);
    expect(res.status, path).toBe(200);
    return res.body;
  };

  it('finds devices by a part of the name or a prefix of the id, with % and _ taken literally', async () => {
    const names = async (q: string): Promise<string[]> => (await get(`/api/v1/devices?q=${encodeURIComponent(q)}`)).items.map((d: { name: string }) => d.name).sort();
    expect(await names('GAR')).toEqual(['garage']);
    expect(await names('50%_')).toEqual(['kitchen 50%_off']);
    expect(await names('%')).toEqual(['kitchen 50%_off']);
    expect(await names('_')).toEqual(['kitchen 50%_off']);
    expect(await names(devices[1]!.id.slice(0, 10))).toEqual(['garage']);
    expect(await names(devices[1]!.id.slice(2, 12))).toEqual([]);
  });

  it('counts devices by status and presence, and the devices a target would match', async () => {
    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, devices[0]!);
    clients.push(client);
    await expect.poll(async () => (await get('/api/v1/fleet/summary')).online).toBe(1);
    const s = await get('/api/v1/fleet/summary');
    expect(s).toMatchObject({ total: 4, online: 1, offline: 3, byStatus: { accepted: 3, pending: 1 }, deploymentsRunning: 0 });
    expect((await get('/api/v1/fleet/target-count?all=true')).count).toBe(3);
    expect((await get(`/api/v1/fleet/target-count?deviceId=${devices[0]!.id}&deviceId=${devices[2]!.id}`)).count).toBe(2);
    expect((await get('/api/v1/fleet/target-count?tag=none')).count).toBe(0);
  });

  it("downsamples a device's telemetry into bucket means", async () => {
    const client = clients[0]!;
    const id = devices[0]!.id;
    for (const cpu of [10, 30]) {
      await client.publishAsync(telemetryTopic(id), JSON.stringify({ cpu, mem: [25, 100], disk: [40, 100], load: [1, 1, 1] }), { qos: 0 });
    }
    await expect.poll(async () => (await get(`/api/v1/devices/${id}/telemetry/series?window=7d`)).points.reduce((n: number, p: { samples: number }) => n + p.samples, 0)).toBe(2);
    const series = await get(`/api/v1/devices/${id}/telemetry/series?window=7d`);
    expect(series.bucketS).toBe(3600);
    // Both samples fall in one hour bucket unless the hour turned in between.
    const all = series.points as Array<{ cpu: number; mem: number; disk: number; load: number; samples: number }>;
    const cpuMean = all.reduce((a, p) => a + p.cpu * p.samples, 0) / 2;
    expect(cpuMean).toBe(20);
    expect(all.every((p) => p.mem === 25 && p.disk === 60 && p.load === 1)).toBe(true);
    expect((await api('GET', `${server.httpUrl}/api/v1/devices/${id}/telemetry/series?window=2h`, server.adminHeaders)).status).toBe(400);
  });

  it('lists executions per phase, by state, and per device with their errors', async () => {
    const client = clients[0]!;
    const id = devices[0]!.id;
    const commands: Command[] = [];
    client.on('message', (_t, p) => commands.push(JSON.parse(p.toString()) as Command));
    await client.subscribeAsync(cmdTopic(id), { qos: 1 });
    const up = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ name: 'app', version: '1.0.0' }), headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    const bundleId = ((await up.json()) as { id: string }).id;
    const dep = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId, target: { deviceIds: [id] } });
    expect(dep.status).toBe(201);
    await expect.poll(() => commands.length).toBeGreaterThan(0);
    const first = (await get(`/api/v1/deployments/${dep.body.id}/executions?state=sent`)).items;
    expect(first).toHaveLength(1);
    await client.publishAsync(eventsTopic(id), JSON.stringify({ executionId: commands[0]!.executionId, state: 'failed', error: 'install.sh exited with 1: no space', ts: Date.now() }), { qos: 1 });
    await expect.poll(async () => (await get(`/api/v1/deployments/${dep.body.id}/executions?state=failed`)).items.length).toBe(1);
    const failed = (await get(`/api/v1/deployments/${dep.body.id}/executions?state=failed`)).items[0];
    expect(failed).toMatchObject({ deviceId: id, state: 'failed', error: 'install.sh exited with 1: no space' });
    const mine = (await get(`/api/v1/devices/${id}/executions`)).items;
    expect(mine).toEqual([expect.objectContaining({ deploymentId: dep.body.id, state: 'failed', error: 'install.sh exited with 1: no space', bundle: { name: 'app', version: '1.0.0' } })]);
    expect((await api('GET', `${server.httpUrl}/api/v1/deployments/${dep.body.id}/executions?state=bogus`, server.adminHeaders)).status).toBe(400);

    const phased = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, {
      bundleId,
      target: { deviceIds: devices.map((d) => d.id) },
      rollout: { phases: [{ percent: 1 }, { percent: 100 }] },
    });
    expect(phased.status).toBe(201);
    const phases = (await get(`/api/v1/deployments/${phased.body.id}/phases`)).items as Array<{ phase: number; total: number; counts: Record<string, number> }>;
    // A 1 % canary of 3 devices is one device; the rest come in the second phase.
    expect(phases.map((p) => [p.phase, p.total])).toEqual([[0, 1], [1, 2]]);
    expect(phases[1]!.counts.queued).toBe(2);
  });
});
