import { telemetryTopic } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { launchChromium, recordedContext, signIn, type RecordedContext } from '../test-support/browser.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { connectDevice } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

const HOSTILE = '<img src=x onerror="window.__pwned=1">';
/** Set KERNEX_SCREENSHOT_DIR to write the README's screenshots (docs/console) while the tests run. */
const SHOTS = process.env.KERNEX_SCREENSHOT_DIR;

describe('web console in Chromium against a real server and real agents (DESIGN §9)', () => {
  let server: TestServer;
  let browser: Browser;
  let admin: RecordedContext;
  let page: Page;
  const contexts: RecordedContext[] = [];
  const agents: FleetAgent[] = [];
  const clients: MqttClient[] = [];
  let token: string;

  const shot = async (p: Page, name: string): Promise<void> => {
    if (SHOTS) await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };
  const context = async (): Promise<RecordedContext> => {
    const c = await recordedContext(browser);
    contexts.push(c);
    return c;
  };
  const upload = async (body: Buffer): Promise<string> => {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body, headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  const deployment = async (id: string): Promise<any> => (await api('GET', `${server.httpUrl}/api/v1/deployments/${id}`, server.adminHeaders)).body;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    token = await enrollmentToken(server.httpUrl, server.adminHeaders, 20);
    browser = await launchChromium();
    admin = await context();
    page = await admin.newPage();
    page.on('dialog', (d) => void d.accept());
    if (SHOTS) await fs.mkdir(SHOTS, { recursive: true });
  });

  afterAll(async () => {
    for (const c of clients) await c.endAsync().catch(() => {});
    for (const a of agents) await a.stop().catch(() => {});
    for (const c of contexts) await c.context.close().catch(() => {});
    await browser?.close();
    await server?.stop();
  });

  it('signs in and shows devices coming online and going offline live', async () => {
    await signIn(page, server.httpUrl, server.adminKey);
    await page.getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByRole('heading', { name: 'Devices' }).waitFor();
    // A marker on the window: gone if the page reloaded.
    await page.evaluate('window.__same = true');

    for (const name of ['edge-a', 'edge-b']) {
      const state = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-console-'));
      agents.push(await startAgent(server.httpUrl, token, { KERNEX_DEVICE_NAME: name, KERNEX_STATE_DIR: state }));
    }
    const row = (id: string) => page.locator(`tr[data-device-id="${id}"]`);
    for (const a of agents) await expect.poll(() => row(a.deviceId).locator('[data-presence]').textContent()).toBe('online');
    expect(await row(agents[0]!.deviceId).getByRole('link').textContent()).toBe('edge-a');

    await agents[1]!.stop();
    await expect.poll(() => row(agents[1]!.deviceId).locator('[data-presence]').textContent()).toBe('offline');
    await agents[1]!.restart();
    await expect.poll(() => row(agents[1]!.deviceId).locator('[data-presence]').textContent()).toBe('online');
    expect(await page.evaluate('window.__same')).toBe(true);
    await shot(page, 'devices');
  });

  it('shows a hostile device name as text, runs no script, and charts its telemetry', async () => {
    const device = await makeDevice();
    expect((await register(server.httpUrl, device, { enrollmentToken: token, name: HOSTILE, hardware: { model: '<script>window.__pwned=2</script>' } })).status).toBe(201);
    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, device);
    clients.push(client);
    for (let i = 0; i < 5; i++) {
      const t = { ts: Math.floor(Date.now() / 1000), cpu: 10 + i * 10, mem: [256 + i, 1024], disk: [600, 1000], load: [0.5 + i / 10, 0.4, 0.3] };
      await client.publishAsync(telemetryTopic(device.id), JSON.stringify(t), { qos: 0 });
    }
    // The chart reads what the server stored: wait for the batched writer.
    await expect
      .poll(async () => (await api('GET', `${server.httpUrl}/api/v1/devices/${device.id}/telemetry/series?window=1h`, server.adminHeaders)).body.points[0]?.samples ?? 0)
      .toBe(5);

    await page.goto(`${server.httpUrl}/console/#/devices`);
    const link = page.locator(`tr[data-device-id="${device.id}"]`).getByRole('link');
    await expect.poll(() => link.textContent()).toBe(HOSTILE);
    expect(await page.locator('table img').count()).toBe(0);
    await link.click();
    await expect.poll(() => page.getByTestId('device-name').textContent()).toBe(HOSTILE);
    await page.getByText('<script>window.__pwned=2</script>', { exact: true }).waitFor();
    const chart = page.locator('figure.chart').first();
    await chart.locator('canvas').waitFor();
    expect(Number(await chart.getAttribute('data-points'))).toBeGreaterThan(0);
    expect(await page.locator('main img, main script').count()).toBe(0);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    await shot(page, 'device');
  });

  it('uploads a bundle with a progress bar', async () => {
    await page.goto(`${server.httpUrl}/console/#/bundles`);
    await page.getByRole('heading', { name: 'Bundles' }).waitFor();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-bundle-'));
    const file = path.join(dir, 'app-1.0.0.tar.gz');
    await fs.writeFile(file, await makeBundle({ name: 'app', version: '1.0.0', padding: 2 * 1024 * 1024 }));
    // Slow the upload down so the bar has something to show (real XHR progress events).
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 512 * 1024 });
    // Samples the bar on every frame the page paints.
    await page.evaluate(`(() => {
      const seen = (window.__progress = []);
      const sample = () => {
        const bar = document.querySelector('form.upload progress');
        if (bar) seen.push(bar.value / bar.max);
        requestAnimationFrame(sample);
      };
      sample();
    })()`);
    await page.getByLabel('Bundle file (.tar.gz)').setInputFiles(file);
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByText('Uploaded app@1.0.0.').waitFor();
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const seen = (await page.evaluate('window.__progress')) as number[];
    expect(seen.some((v) => v > 0 && v < 1)).toBe(true);
    await page.locator('tr[data-bundle="app@1.0.0"]').waitFor();
    await shot(page, 'bundles');
  });

  it('creates a phased deployment and watches it complete live', async () => {
    await page.goto(`${server.httpUrl}/console/#/deployments`);
    await page.getByRole('button', { name: 'New deployment' }).click();
    await page.getByLabel('Bundle').selectOption({ label: 'app@1.0.0' });
    await page.getByLabel('Devices by id').check();
    await page.getByLabel('Device ids (one per line)').fill(agents.map((a) => a.deviceId).join('\n'));
    await expect.poll(() => page.getByTestId('target-count').textContent()).toBe('Matches 2 devices');
    await page.getByLabel('Phases (cumulative %, e.g. 1,10,100)').fill('50,100');
    await shot(page, 'new-deployment');
    await page.getByRole('button', { name: 'Create deployment' }).click();
    await page.getByTestId('deployment-status').waitFor();
    await page.evaluate('window.__same = true');
    const id = page.url().split('/').pop()!;
    await expect.poll(() => page.getByTestId('deployment-status').textContent(), { timeout: 60_000 }).toBe('completed');
    await expect.poll(() => page.getByTestId('succeeded').textContent()).toBe('2/2');
    // Live progress per phase: both phases end with one succeeded execution each.
    for (const phase of [0, 1]) {
      await expect.poll(() => page.locator(`tr[data-phase="${phase}"] [data-state="succeeded"]`).getAttribute('data-count')).toBe('1');
    }
    expect(await page.locator('tr[data-phase]').count()).toBe(2);
    expect(await page.evaluate('window.__same')).toBe(true);
    expect((await deployment(id)).status).toBe('completed');
    await shot(page, 'deployment');
    await page.goto(`${server.httpUrl}/console/#/deployments`);
    await expect.poll(() => page.locator(`tr[data-deployment-id="${id}"]`).textContent()).toContain('app@1.0.0');
    expect(await page.locator(`tr[data-deployment-id="${id}"]`).textContent()).toContain('2/2');
  });

  it("shows the error text of a device that rolled back", async () => {
    const bad = await upload(await makeBundle({ name: 'app', version: '2.0.0', healthCheck: '#!/bin/sh\necho "port 8080 closed" >&2\nexit 3\n' }));
    const target = agents[0]!;
    const created = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId: bad, target: { deviceIds: [target.deviceId] } });
    expect(created.status).toBe(201);
    await page.goto(`${server.httpUrl}/console/#/deployments/${created.body.id}`);
    const row = page.locator(`table.executions tr[data-device-id="${target.deviceId}"]`);
    await expect.poll(() => row.locator('.state').textContent(), { timeout: 60_000 }).toBe('rolled_back');
    await expect.poll(() => row.locator('.error-text').textContent()).toMatch(/exited with 3: port 8080 closed/);
    await page.getByLabel('State').selectOption('rolled_back');
    await expect.poll(() => page.locator('table.executions tbody tr').count()).toBe(1);
    await page.goto(`${server.httpUrl}/console/#/devices/${target.deviceId}`);
    await expect.poll(() => page.locator('.timeline li[data-state="rolled_back"] .error-text').textContent()).toMatch(/port 8080 closed/);
    await shot(page, 'device-rolled-back');
  });

  it('cancels a deployment', async () => {
    // An accepted device that is offline: its execution waits at sent until cancelled.
    const device = await makeDevice();
    await register(server.httpUrl, device, { enrollmentToken: token, name: 'asleep' });
    const bundle = await upload(await makeBundle({ name: 'tool', version: '1.0.0' }));
    const created = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId: bundle, target: { deviceIds: [device.id] } });
    await page.goto(`${server.httpUrl}/console/#/deployments/${created.body.id}`);
    await page.getByRole('button', { name: 'Cancel deployment' }).click();
    await expect.poll(() => page.getByTestId('deployment-status').textContent()).toBe('cancelled');
    expect((await deployment(created.body.id)).status).toBe('cancelled');
    await expect.poll(() => page.getByRole('button', { name: 'Cancel deployment' }).count()).toBe(0);
  });

  it("accepts a pending device after confirming, and edits its tags", async () => {
    const device = await makeDevice();
    await register(server.httpUrl, device, { name: 'newcomer' });
    const asked: string[] = [];
    page.on('dialog', (d) => void asked.push(d.message()));
    await page.goto(`${server.httpUrl}/console/#/devices/${device.id}`);
    await expect.poll(() => page.getByTestId('device-status').textContent()).toBe('pending');
    await page.getByRole('button', { name: 'Accept' }).click();
    await expect.poll(() => page.getByTestId('device-status').textContent()).toBe('accepted');
    expect(asked.some((m) => m.startsWith('Accept this device?'))).toBe(true);
    await page.getByLabel('Tags (comma-separated)').fill('lab, floor-2');
    await page.getByRole('button', { name: 'Save tags' }).click();
    await page.getByText('Tags saved.').waitFor();
    expect((await api('GET', `${server.httpUrl}/api/v1/devices/${device.id}`, server.adminHeaders)).body).toMatchObject({ status: 'accepted', tags: ['lab', 'floor-2'] });
  });

  it('creates an enrollment token shown once with a copy button, and revokes it', async () => {
    await admin.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.httpUrl });
    await page.goto(`${server.httpUrl}/console/#/tokens`);
    await page.getByLabel('Uses').fill('3');
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = (await page.getByTestId('secret').textContent())!;
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByText('Copied.').waitFor();
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(secret);
    // The token enrolls a device.
    const device = await makeDevice();
    expect((await register(server.httpUrl, device, { enrollmentToken: secret })).body.status).toBe('accepted');
    await shot(page, 'tokens');
    // Shown once: a fresh load of the screen lists it by prefix only.
    await page.reload();
    await page.getByRole('button', { name: 'Revoke' }).first().waitFor();
    expect(await page.content()).not.toContain(secret);
    const rows = page.locator('tbody tr', { hasText: secret.slice(0, 6) });
    await rows.getByRole('button', { name: 'Revoke' }).click();
    await expect.poll(() => rows.textContent()).toContain('revoked');
    expect((await register(server.httpUrl, await makeDevice(), { enrollmentToken: secret })).status).toBe(401);
  });

  it('shows a viewer no action buttons, the server refuses it anyway, and a revoked key returns to sign-in', async () => {
    const key = (await api('POST', `${server.httpUrl}/api/v1/api-keys`, server.adminHeaders, { name: 'viewer', role: 'viewer' })).body;
    const c = await context();
    const p = await c.newPage();
    // Keyboard only: the label's input takes focus, Enter submits.
    await p.goto(`${server.httpUrl}/console/`);
    await p.getByLabel('API key').focus();
    await p.keyboard.type(key.key);
    await p.keyboard.press('Enter');
    await p.getByRole('button', { name: 'Sign out' }).waitFor();
    const deploymentId = (await api('GET', `${server.httpUrl}/api/v1/deployments?limit=1`, server.adminHeaders)).body.items[0].id;
    const screens = ['#/', '#/devices', `#/devices/${agents[0]!.deviceId}`, '#/bundles', '#/deployments', `#/deployments/${deploymentId}`, '#/audit'];
    for (const s of screens) {
      await p.goto(`${server.httpUrl}/console/${s}`);
      await p.locator('main h1').first().waitFor();
      await p.waitForLoadState('networkidle').catch(() => {});
      const names = await p.locator('main button').allTextContents();
      // Only paging and chart-window buttons: nothing that changes anything.
      expect(names.filter((n) => !/^(Previous page|Next page|1h|24h|7d)$/.test(n)), s).toEqual([]);
      expect(await p.locator('main input[type=file], main form.tags').count(), s).toBe(0);
    }
    expect(await p.getByRole('link', { name: 'API keys' }).count()).toBe(0);
    expect(await p.getByRole('link', { name: 'Enrollment tokens' }).count()).toBe(0);
    const refused = await p.evaluate(`fetch('/api/v1/deployments/${deploymentId}/cancel', { method: 'POST', headers: { 'x-kernex-csrf': '1' } }).then((r) => r.status)`);
    expect(refused).toBe(403);

    expect((await api('DELETE', `${server.httpUrl}/api/v1/api-keys/${key.id}`, server.adminHeaders)).status).toBe(200);
    await p.getByRole('link', { name: 'Bundles' }).click();
    await p.getByLabel('API key').waitFor();
    await p.getByText(/Your session has ended/).waitFor();
  });

  it('signs out, after which the API refuses the old cookie', async () => {
    await page.goto(`${server.httpUrl}/console/#/`);
    await page.getByRole('heading', { name: 'Fleet overview' }).waitFor();
    await shot(page, 'overview');
    const cookie = (await admin.context.cookies()).find((c) => c.name === 'kx_session')!;
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.sameSite).toBe('Strict');
    expect(await page.evaluate('document.cookie')).toBe('');
    expect(await page.evaluate('JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage })')).not.toContain(server.adminKey);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    const res = await fetch(`${server.httpUrl}/api/v1/devices`, { headers: { cookie: `kx_session=${cookie.value}` } });
    expect(res.status).toBe(401);
  });

  it('loaded nothing from any other host, and no script error or CSP violation happened', () => {
    const all = contexts.flatMap((c) => c.requests);
    expect(all.length).toBeGreaterThan(0);
    expect(all.filter((u) => !u.startsWith(`${server.httpUrl}/`))).toEqual([]);
    expect(contexts.flatMap((c) => c.pageErrors)).toEqual([]);
    // The refusals the tests caused on purpose, and nothing else.
    const refusals = contexts.flatMap((c) => c.refusals).map((r) => r.replace(server.httpUrl, '').replace(/[0-9a-f-]{36}/, ':id'));
    expect(new Set(refusals)).toEqual(new Set(['401 GET /api/v1/session', '403 POST /api/v1/deployments/:id/cancel', '401 GET /api/v1/bundles?limit=50']));
  });
});
