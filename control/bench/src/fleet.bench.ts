import { cmdTopic, deviceIdFromPublicKey, generateDeviceKey, publicKeyPem, signDeviceJwt } from '@kernex/shared';
import { metricValue, startKernexServer, type KernexProcess } from './kernex-process.js';
import { Swarm, type SwarmClientSpec } from './swarm/swarm.js';
import { memoryProbe, rssOf } from './targets.js';

/** Figures of one authenticated connect-storm run against a real `kernex server` process. */
export interface AuthConnectRun {
  /** Devices per second, first CONNECT to last CONNACK, every JWT verified (ES256). */
  coldPerS: number;
  /** The same devices again with the same tokens: the broker's credential cache answers. */
  warmPerS: number;
  /** Growth of the server process's RSS per connected, subscribed device after a full GC (PostgreSQL not counted). */
  serverBytesPerDevice: number;
  /** The same read at once after the storm, with its garbage (how the row was measured before 2026-12-01). */
  serverBytesPerDeviceAtOnce: number;
  /** Growth of the server's live JavaScript heap per device. */
  serverHeapPerDevice: number;
}

/** Devices connected and closed before the memory baseline, so one-time costs are not counted per device. */
const WARM_UP_DEVICES = 20;

/** A registered device ready to connect: its id and an MQTT JWT. */
export interface BenchDevice {
  id: string;
  password: string;
}

/** Creates an enrollment token for `uses` devices. */
export async function enrollmentToken(server: KernexProcess, uses: number): Promise<string> {
  const res = await fetch(`${server.httpUrl}/api/v1/enrollment-tokens`, { method: 'POST', headers: server.adminHeaders, body: JSON.stringify({ uses, expiresInS: 3600 }) });
  if (res.status !== 201) throw new Error(`enrollment token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

/** Makes `n` P-256 devices, registers them (16 at a time) and signs each an MQTT JWT. */
export async function registerDevices(server: KernexProcess, n: number): Promise<BenchDevice[]> {
  const token = await enrollmentToken(server, n);
  const devices: BenchDevice[] = [];
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < n) {
      next++;
      const key = await generateDeviceKey('p256');
      const id = deviceIdFromPublicKey(key.publicKeyPem);
      const proof = await signDeviceJwt({ privateKey: key.privateKeyPem, deviceId: id, aud: 'kernex-register' });
      const res = await fetch(`${server.httpUrl}/api/v1/devices/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ publicKey: publicKeyPem(key.publicKeyPem), proof, enrollmentToken: token }),
      });
      if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${await res.text()}`);
      devices.push({ id, password: await signDeviceJwt({ privateKey: key.privateKeyPem, deviceId: id, aud: 'kernex-mqtt', ttlS: 3600 }) });
    }
  };
  await Promise.all(Array.from({ length: 16 }, one));
  return devices;
}

export function swarmClients(devices: readonly BenchDevice[]): SwarmClientSpec[] {
  return devices.map((d) => ({ clientId: d.id, username: d.id, password: d.password, subscribe: cmdTopic(d.id) }));
}

/** Connects every device through a swarm; answers the swarm (still connected) and devices per second. */
export async function connectStorm(url: string, clients: SwarmClientSpec[], workers: number, connectRate = 0): Promise<{ swarm: Swarm; perS: number }> {
  const swarm = Swarm.start({ url, clients, workers, clean: false, connectRate });
  await swarm.waitFor((s) => s.subscribed + s.failures.length >= clients.length, 300_000, 'authenticated subscriptions');
  if (swarm.failures.length) {
    await swarm.close();
    throw new Error(`${swarm.failures.length} devices failed: ${swarm.failures[0]!.reason}`);
  }
  const first = Math.min(...swarm.connectTimes.map((c) => c.sentAt));
  const last = Math.max(...swarm.connectTimes.map((c) => c.ackAt));
  return { swarm, perS: clients.length / ((last - first) / 1000) };
}

/** Waits until the server's `kernex_devices_connected` gauge reads `n`. */
export async function connectedGauge(server: KernexProcess, n: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await metricValue(server.httpUrl, 'kernex_devices_connected')) === n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`kernex_devices_connected never reached ${n}`);
}

/**
 * Connect storm with authentication: a real `kernex server` (real
 * DeviceDirectory on PostgreSQL), `devices` P-256 devices registered
 * beforehand, each connecting with its own ES256 JWT and subscribing to its
 * `kx/{id}/cmd`. Cold: every token is verified. Warm: all disconnect and
 * reconnect with the same tokens, which the broker's credential cache knows.
 */
export async function authConnectRun(devices: number, workers: number): Promise<AuthConnectRun> {
  const probe = memoryProbe();
  const server = await startKernexServer(probe.env, probe.nodeArgs);
  try {
    const registered = await registerDevices(server, devices + WARM_UP_DEVICES);
    const clients = swarmClients(registered.slice(WARM_UP_DEVICES));
    const url = `mqtt://127.0.0.1:${server.mqttPort}`;
    const warmUp = await connectStorm(url, swarmClients(registered.slice(0, WARM_UP_DEVICES)), 1);
    await connectedGauge(server, WARM_UP_DEVICES);
    await warmUp.swarm.close();
    await connectedGauge(server, 0);
    const before = await probe.settled(server.pid);
    const cold = await connectStorm(url, clients, workers);
    await connectedGauge(server, devices);
    const serverBytesPerDeviceAtOnce = ((await rssOf(server.pid)) - before.rss) / devices;
    const after = await probe.settled(server.pid);
    await cold.swarm.close();
    await connectedGauge(server, 0);
    const warm = await connectStorm(url, clients, workers);
    await warm.swarm.close();
    return {
      coldPerS: cold.perS,
      warmPerS: warm.perS,
      serverBytesPerDevice: (after.rss - before.rss) / devices,
      serverBytesPerDeviceAtOnce,
      serverHeapPerDevice: (after.heapUsed - before.heapUsed) / devices,
    };
  } finally {
    await server.stop();
  }
}
