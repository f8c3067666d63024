import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { cmdTopic, deviceIdFromPublicKey, generateDeviceKey, signDeviceJwt } from '@kernex/shared';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import tar from 'tar-stream';
import { loadConfig } from '../config.js';
import { startServer, type RunningServer } from '../server.js';
import { percentile } from './stats.js';

/** One run of the deployment benchmark. */
export interface DeploymentRun {
  /** POST /api/v1/deployments → each device has its `deploy` command, ms. */
  dispatchP50Ms: number;
  dispatchP99Ms: number;
  /** Aggregate bundle download throughput, MiB/s, with `downloads` concurrent device downloads. */
  downloadMiBps: number;
}

interface SimDevice {
  id: string;
  privateKeyPem: string;
  client: MqttClient;
  received?: number;
  onCommand?: () => void;
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** A bundle of about `bytes` (incompressible payload), as a .tar.gz. */
async function bundle(version: string, bytes: number): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => chunks.push(c as Buffer));
  const ended = new Promise<void>((r) => pack.once('end', () => r()));
  const add = (name: string, body: Buffer): Promise<void> => new Promise((res, rej) => pack.entry({ name, mode: 0o755 }, body, (e) => (e ? rej(e) : res())));
  await add('manifest.json', Buffer.from(JSON.stringify({ name: 'bench', version, install: 'install.sh' })));
  await add('install.sh', Buffer.from('#!/bin/sh\n'));
  await add('payload.bin', randomBytes(bytes));
  pack.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks), { level: 1 });
}

/**
 * 1) Fan-out: `devices` MQTT.js clients (P-256 keys, registered and
 *    authenticated like real devices, one process, loopback) subscribe to their
 *    command topics; one POST /api/v1/deployments targets them all; each
 *    client notes when its `deploy` arrives.
 * 2) Downloads: `downloads` of those devices fetch the bundle's blob at once
 *    with their own kernex-http JWTs (the device access check included).
 */
export async function deploymentRun(devices: number, downloads: number, bundleBytes: number): Promise<DeploymentRun> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-bench-deploy-'));
  // As root the embedded PostgreSQL runs as 'postgres', which must enter the directory.
  await fs.chmod(dataDir, 0o755);
  const adminKey = `kx_bench_${randomBytes(16).toString('hex')}`;
  const config = loadConfig({ KERNEX_DATA_DIR: dataDir, KERNEX_ADMIN_KEY: adminKey, KERNEX_HOST: '127.0.0.1', KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', LOG_LEVEL: 'warn', KERNEX_MAX_BUNDLE_MB: '64' });
  // RSA-2048 signing key: making an RSA-4096 one would only add seconds to the set-up.
  const signingKeyPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const server: RunningServer = await startServer(config, pino({ level: 'warn' }), { signingKeyPem });
  const headers = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
  const sims: SimDevice[] = [];
  try {
    const tokenRes = await fetch(`${server.httpUrl}/api/v1/enrollment-tokens`, { method: 'POST', headers, body: JSON.stringify({ uses: devices, expiresInS: 3600 }) });
    const { token } = (await tokenRes.json()) as { token: string };
    const keys = await Promise.all(Array.from({ length: devices }, () => generateDeviceKey('p256')));
    await pool(keys, 32, async (k) => {
      const id = deviceIdFromPublicKey(k.publicKeyPem);
      const proof = await signDeviceJwt({ privateKey: k.privateKeyPem, deviceId: id, aud: 'kernex-register' });
      const res = await fetch(`${server.httpUrl}/api/v1/devices/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ publicKey: k.publicKeyPem, proof, enrollmentToken: token }) });
      if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`);
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, {
        clientId: id,
        username: id,
        password: await signDeviceJwt({ privateKey: k.privateKeyPem, deviceId: id, aud: 'kernex-mqtt' }),
        clean: false,
        reconnectPeriod: 0,
      });
      await client.subscribeAsync(cmdTopic(id), { qos: 1 });
      const sim: SimDevice = { id, privateKeyPem: k.privateKeyPem, client };
      client.on('message', () => {
        sim.received ??= performance.now();
        sim.onCommand?.();
      });
      sims.push(sim);
    });

    const archive = await bundle('1.0.0', bundleBytes);
    const up = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { authorization: headers.authorization, 'content-type': 'application/gzip' } });
    const { id: bundleId } = (await up.json()) as { id: string };

    let waiting = sims.length;
    const all = new Promise<void>((resolve) => {
      for (const s of sims) s.onCommand = () => --waiting === 0 && resolve();
    });
    const t0 = performance.now();
    const created = await fetch(`${server.httpUrl}/api/v1/deployments`, { method: 'POST', headers, body: JSON.stringify({ bundleId, target: { all: true } }) });
    if (created.status !== 201) throw new Error(`deployment: ${created.status} ${await created.text()}`);
    await all;
    const latencies = sims.map((s) => s.received! - t0);

    // Downloads, each by a device with a live execution of this bundle.
    const downloaders = sims.slice(0, downloads);
    const jwts = await Promise.all(downloaders.map((s) => signDeviceJwt({ privateKey: s.privateKeyPem, deviceId: s.id, aud: 'kernex-http' })));
    const d0 = performance.now();
    const sizes = await Promise.all(
      jwts.map(async (jwt) => {
        const res = await fetch(`${server.httpUrl}/api/v1/bundles/${bundleId}/blob`, { headers: { authorization: `Bearer ${jwt}` } });
        if (res.status !== 200) throw new Error(`download: ${res.status}`);
        let n = 0;
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) n += chunk.length;
        return n;
      }),
    );
    const seconds = (performance.now() - d0) / 1000;
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== archive.length * downloads) throw new Error('a download came back short');
    return {
      dispatchP50Ms: percentile(latencies, 50),
      dispatchP99Ms: percentile(latencies, 99),
      downloadMiBps: total / 2 ** 20 / seconds,
    };
  } finally {
    await Promise.all(sims.map((s) => s.client.endAsync(true).catch(() => {})));
    await server.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}
