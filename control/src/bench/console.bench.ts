import mqtt from 'mqtt';
import { chromium, type Page } from 'playwright-core';
import { cmdTopic } from '@kernex/shared';
import { connectedGauge, connectStorm, registerDevices, swarmClients } from './fleet.bench.js';
import { startKernexServer } from './kernex-process.js';

/** What one console run measured. */
export interface ConsoleRun {
  /** From navigation to the devices screen until its first page of rows is on screen, per load. */
  firstRenderMs: number[];
  /** From a device's disconnect or connect until its row reads offline or online, per change. */
  presenceMs: number[];
}

/** The browser tests' Chromium and flags (no connections of its own). */
const launch = () =>
  chromium.launch({
    executablePath: process.env.KERNEX_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });

/** Epoch ms at which the row of `deviceId` next reads `word`, seen by a MutationObserver in the page. */
async function watchPresence(page: Page, deviceId: string, word: 'online' | 'offline'): Promise<() => Promise<number>> {
  await page.evaluate(
    `(() => {
      window.__presenceAt = undefined;
      const cell = () => document.querySelector('tr[data-device-id="${deviceId}"] [data-presence]');
      const obs = new MutationObserver(() => {
        if (cell()?.textContent === '${word}') {
          window.__presenceAt = performance.timeOrigin + performance.now();
          obs.disconnect();
        }
      });
      obs.observe(document.querySelector('table.devices'), { subtree: true, childList: true, characterData: true, attributes: true });
    })()`,
  );
  return async () => {
    // Polled with evaluate (the page's CSP forbids waitForFunction's eval); the time is the page's own.
    for (const until = Date.now() + 60_000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
      const at = (await page.evaluate('window.__presenceAt')) as number | undefined;
      if (at !== undefined) return at;
    }
    throw new Error(`device ${deviceId} never read ${word}`);
  };
}

/**
 * The web console at fleet scale: a `kernex server` process with `devices`
 * registered P-256 devices, all but one connected through the swarm, and
 * Debian's Chromium signed in. Measures the devices screen's first render
 * (navigation to 50 rows on screen, server-side paging) and the time from a
 * device's MQTT connect or disconnect to the word changing in its row (broker
 * presence event → SSE → the row), with the event stream open during the storm.
 */
export async function consoleRun(devices: number, workers: number, connectRate: number, loads = 5, flips = 10): Promise<ConsoleRun> {
  const server = await startKernexServer();
  const browser = await launch();
  try {
    const registered = await registerDevices(server, devices);
    // The first registered device is on the first page (registration order); the bench moves it.
    const [watched, ...rest] = registered;
    const storm = await connectStorm(`mqtt://127.0.0.1:${server.mqttPort}`, swarmClients(rest), workers, connectRate);
    await connectedGauge(server, rest.length);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const key = server.adminHeaders.authorization!.replace('Bearer ', '');
    await page.goto(`${server.httpUrl}/console/`);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();

    const firstRenderMs: number[] = [];
    for (let i = 0; i < loads; i++) {
      await page.goto('about:blank');
      const t0 = Date.now();
      await page.goto(`${server.httpUrl}/console/#/devices`);
      await page.locator('table.devices tbody tr').nth(49).waitFor({ timeout: 60_000 });
      firstRenderMs.push(Date.now() - t0);
    }

    const presenceMs: number[] = [];
    let client: mqtt.MqttClient | undefined;
    for (let i = 0; i < flips; i++) {
      const word = client ? 'offline' : 'online';
      const seen = await watchPresence(page, watched!.id, word);
      const t0 = Date.now();
      if (client) {
        await client.endAsync();
        client = undefined;
      } else {
        client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { clientId: watched!.id, username: watched!.id, password: watched!.password, protocolVersion: 4, reconnectPeriod: 0 });
        await client.subscribeAsync(cmdTopic(watched!.id), { qos: 1 });
      }
      presenceMs.push((await seen()) - t0);
    }
    await client?.endAsync();
    await context.close();
    await storm.swarm.close();
    return { firstRenderMs, presenceMs };
  } finally {
    await browser.close();
    await server.stop();
  }
}
