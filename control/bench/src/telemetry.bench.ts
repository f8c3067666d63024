import mqtt, { type MqttClient } from 'mqtt';
import { deviceIdFromPublicKey, generateDeviceKey, publicKeyPem, signDeviceJwt, telemetryTopic } from '@kernex/shared';
import { metricValue, startKernexServer } from './kernex-process.js';

/** Result of one telemetry ingest run. */
export interface TelemetryRun {
  sent: number;
  persisted: number;
  /** Samples the server counted as dropped (`kernex_telemetry_dropped_total`). */
  dropped: number;
  /** Samples written to PostgreSQL per second, from the first publish to the last write. */
  persistedPerS: number;
}

async function registerDevice(httpUrl: string, token: string): Promise<{ id: string; privateKeyPem: string }> {
  const key = await generateDeviceKey('p256');
  const id = deviceIdFromPublicKey(key.publicKeyPem);
  const proof = await signDeviceJwt({ privateKey: key.privateKeyPem, deviceId: id, aud: 'kernex-register' });
  const res = await fetch(`${httpUrl}/api/v1/devices/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ publicKey: publicKeyPem(key.publicKeyPem), proof, enrollmentToken: token }),
  });
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${await res.text()}`);
  return { id, privateKeyPem: key.privateKeyPem };
}

/**
 * Telemetry messages per second one server persists: `devices` real MQTT.js
 * clients (authenticated with device JWTs) publish `perDevice` typical agent
 * samples each, as fast as they can; the figure is the number that reached
 * PostgreSQL (`kernex_telemetry_persisted_total`) divided by the time from the
 * first publish to the last write, so the server, not the publishers, sets it.
 */
export async function telemetryRun(devices: number, perDevice: number): Promise<TelemetryRun> {
  const server = await startKernexServer();
  const clients: MqttClient[] = [];
  try {
    const tokenRes = await fetch(`${server.httpUrl}/api/v1/enrollment-tokens`, {
      method: 'POST',
      headers: server.adminHeaders,
      body: JSON.stringify({ uses: devices, expiresInS: 600 }),
    });
    const { token } = (await tokenRes.json()) as { token: string };
    const ids: Array<{ id: string; privateKeyPem: string }> = [];
    for (let i = 0; i < devices; i++) ids.push(await registerDevice(server.httpUrl, token));
    for (const d of ids) {
      const password = await signDeviceJwt({ privateKey: d.privateKeyPem, deviceId: d.id, aud: 'kernex-mqtt' });
      const c = mqtt.connect(`mqtt://127.0.0.1:${server.mqttPort}`, { clientId: d.id, username: d.id, password, clean: false, reconnectPeriod: 0 });
      await new Promise<void>((resolve, reject) => {
        c.once('connect', () => resolve());
        c.once('error', reject);
      });
      clients.push(c);
    }
    const sample = (i: number): string =>
      JSON.stringify({ ts: Math.floor(Date.now() / 1000), cpu: i % 100, mem: [812345344, 4012345344], disk: [12345678848, 31234567168], load: [0.12, 0.1, 0.05], up: 123456, v: '0.1.0' });

    const t0 = performance.now();
    let sent = 0;
    for (let round = 0; round < perDevice; round++) {
      // One message per client per round; wait for the sockets to drain so the test measures the server, not our buffers.
      await Promise.all(
        clients.map(
          (c, i) =>
            new Promise<void>((resolve) => {
              c.publish(telemetryTopic(ids[i]!.id), sample(sent + i), { qos: 0 }, () => resolve());
            }),
        ),
      );
      sent += clients.length;
    }
    let persisted = 0;
    let lastChange = performance.now();
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      const now = await metricValue(server.httpUrl, 'kernex_telemetry_persisted_total');
      if (now !== persisted) {
        persisted = now;
        lastChange = performance.now();
      } else if (persisted >= sent || performance.now() - lastChange > 5000) break;
    }
    const dropped = await metricValue(server.httpUrl, 'kernex_telemetry_dropped_total');
    return { sent, persisted, dropped, persistedPerS: persisted / ((lastChange - t0) / 1000) };
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await server.stop();
  }
}
