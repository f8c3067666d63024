import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createPublicKey } from 'node:crypto';
import { deviceIdFromPublicKey, generateDeviceKey, signDeviceJwt, verifyDeviceJwt } from '@kernex/shared';
import { Swarm, type SwarmClientSpec } from './swarm/swarm.js';

/** Connect rates of one run, authentication on. */
export interface ConnectStormRun {
  /** Every CONNECT verified: directory lookup (in memory) + ES256 signature check. */
  coldPerS: number;
  /** The same JWTs again: answered from the broker's credential cache. */
  warmPerS: number;
  /** Whether the broker process was pinned to one core with taskset. */
  pinned: boolean;
}

/** N P-256 devices (the simulator's key type) with one kernex-mqtt JWT each. */
export async function makeDevices(n: number): Promise<Array<{ id: string; publicKeyPem: string; jwt: string }>> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const keys = await generateDeviceKey('p256');
    const id = deviceIdFromPublicKey(keys.publicKeyPem);
    out.push({ id, publicKeyPem: keys.publicKeyPem, jwt: await signDeviceJwt({ privateKey: keys.privateKeyPem, deviceId: id, aud: 'kernex-mqtt', ttlS: 3600 }) });
  }
  return out;
}

/** JWT verifications per second in this thread alone, keys parsed beforehand: the ceiling of a cold storm on one core. */
export async function verifyRate(devices: Array<{ id: string; publicKeyPem: string; jwt: string }>): Promise<number> {
  const keys = devices.map((d) => createPublicKey(d.publicKeyPem));
  const start = performance.now();
  for (const [i, d] of devices.entries()) await verifyDeviceJwt(d.jwt, { publicKey: keys[i]!, deviceId: d.id, aud: 'kernex-mqtt' });
  return devices.length / ((performance.now() - start) / 1000);
}

async function hasTaskset(): Promise<boolean> {
  return fs.access('/usr/bin/taskset').then(
    () => true,
    () => false,
  );
}

/** Connects every client once; answers connects per second (N / first CONNECT to last CONNACK). */
async function storm(url: string, clients: SwarmClientSpec[], workers: number): Promise<number> {
  const swarm = Swarm.start({ url, clients, workers });
  try {
    await swarm.waitFor((s) => s.connected + s.failures.length >= clients.length, 120_000, 'connects');
    if (swarm.failures.length) throw new Error(`${swarm.failures.length} clients failed: ${swarm.failures[0]!.reason}`);
    const first = Math.min(...swarm.connectTimes.map((c) => c.sentAt));
    const last = Math.max(...swarm.connectTimes.map((c) => c.ackAt));
    return clients.length / ((last - first) / 1000);
  } finally {
    await swarm.close();
  }
}

/**
 * The connect storm with authentication: a broker process (pinned to CPU 0
 * when taskset exists) knows `devices` P-256 devices; MQTT.js clients in
 * worker threads of this process connect all of them as fast as they can,
 * first cold (every JWT verified), then again with the same JWTs (cached).
 */
export async function connectStormRun(devices: Array<{ id: string; publicKeyPem: string; jwt: string }>, workers: number): Promise<ConnectStormRun> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-bench-'));
  const file = path.join(dir, 'devices.json');
  await fs.writeFile(file, JSON.stringify(devices.map(({ id, publicKeyPem }) => ({ id, publicKeyPem }))));
  const script = fileURLToPath(new URL('./auth-broker-process.js', import.meta.url));
  const pinned = await hasTaskset();
  const proc = pinned
    ? spawn('taskset', ['-c', '0', process.execPath, script, file], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, [script, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      readline.createInterface({ input: proc.stdout! }).once('line', resolve);
      proc.once('exit', (code) => reject(new Error(`broker process exited with ${code}`)));
    });
    const url = `mqtt://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`;
    const clients = devices.map((d) => ({ clientId: d.id, username: d.id, password: d.jwt }));
    const coldPerS = await storm(url, clients, workers);
    const warmPerS = await storm(url, clients, workers);
    return { coldPerS, warmPerS, pinned };
  } finally {
    proc.kill('SIGTERM');
    await exited;
    await fs.rm(dir, { recursive: true, force: true });
  }
}
