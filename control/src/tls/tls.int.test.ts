import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { cmdTopic } from '@kernex/shared';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { connectDevice, subackCodes } from '../test-support/mqtt.js';
import { spawnServer } from '../test-support/spawn-server.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';
import { ensureAutoTls, makeCa } from './auto-ca.js';

const run = promisify(execFile);

/** GET over HTTPS trusting only `ca`: the status and headers. */
function httpsGet(url: string, ca: string): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    }).on('error', reject);
  });
}

describe('zero-setup TLS: the server makes its own CA', () => {
  let server: TestServer;
  let ca: string;
  let device: TestDevice;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_MQTTS_PORT: '0', KERNEX_WS_PORT: '0', KERNEX_PUBLIC_URL: 'http://fleet.test:8080' });
    ca = await fs.readFile(server.caFile!, 'utf8');
    device = await makeDevice();
    const token = await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 1, expiresInS: 60 });
    const res = await register(server.httpUrl, device, { enrollmentToken: token.body.token });
    expect(res.body.mqtt).toEqual([
      `mqtt://fleet.test:${server.mqttPort}`,
      `mqtts://fleet.test:${server.mqttsPort}`,
      `ws://fleet.test:${server.wsPort}`,
    ]);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('sends no Strict-Transport-Security over plain HTTP', async () => {
    const res = await fetch(`${server.httpUrl}/healthz`);
    expect(server.httpUrl).toMatch(/^http:/);
    expect(res.status).toBe(200);
    expect(res.headers.get('strict-transport-security')).toBeNull();
    expect(res.headers.get('x-content-type-options')).toBe('nosniff'); // helmet's other headers stay
  });

  it('keeps the CA in the data directory with a private key only the server can read', async () => {
    expect(server.caFile).toBe(path.join(server.config.dataDir, 'tls', 'ca.crt'));
    expect((await fs.stat(path.join(server.config.dataDir, 'tls', 'ca.key'))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(server.config.dataDir, 'tls', 'server.key'))).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(await fs.readFile(path.join(server.config.dataDir, 'tls', 'server.crt')));
    expect(cert.subjectAltName).toContain('DNS:localhost');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(cert.subjectAltName).toContain('DNS:fleet.test');
    expect(cert.verify(new X509Certificate(ca).publicKey)).toBe(true);
  });

  it('lets a device pinning that CA connect over MQTTS', async () => {
    const client = await connectDevice(`mqtts://127.0.0.1:${server.mqttsPort}`, device, { ca, rejectUnauthorized: true });
    expect(await subackCodes(client, { [cmdTopic(device.id)]: { qos: 1 } })).toEqual([1]);
    await client.endAsync();
  });

  it('fails the handshake for a client trusting another CA, or only the system roots', async () => {
    const other = makeCa('someone else').certPem;
    for (const opts of [{ ca: other }, {}]) {
      const attempt = connectDevice(`mqtts://127.0.0.1:${server.mqttsPort}`, device, { ...opts, rejectUnauthorized: true });
      await expect(attempt).rejects.toThrow(/certificate/i);
    }
  });

  it('speaks MQTT over WebSocket with the same authentication and ACL', async () => {
    const client = await connectDevice(`ws://127.0.0.1:${server.wsPort}`, device);
    expect(await subackCodes(client, { [cmdTopic(device.id)]: { qos: 1 }, '#': { qos: 0 } })).toEqual([1, 128]);
    const message = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(String(p))));
    await server.broker.publishCommand(device.id, { id: 'c', type: 'cancel', executionId: 'e', issuedAt: new Date().toISOString() });
    expect(JSON.parse(await message)).toMatchObject({ id: 'c' });
    await client.endAsync();
    const anonymous = mqtt.connectAsync(`ws://127.0.0.1:${server.wsPort}`, { reconnectPeriod: 0, clientId: 'nobody' });
    await expect(anonymous).rejects.toMatchObject({ code: 5 });
  });

  it('keeps the CA across restarts and remakes the server certificate when the hosts change', async () => {
    const dir = server.config.dataDir;
    const hosts = ['localhost', '127.0.0.1', '::1', 'fleet.test'];
    expect((await ensureAutoTls(dir, hosts)).created).toEqual({ ca: false, server: false });
    const moved = await ensureAutoTls(dir, [...hosts.slice(0, 3), 'new.example']);
    expect(moved.created).toEqual({ ca: false, server: true });
    expect(moved.ca).toBe(ca);
  });
});

describe('TLS from certificate files', () => {
  it('serves HTTPS and MQTTS with the given certificate', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    // A certificate made outside our code.
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', '/CN=kernex-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
    const server = await startTestServer({ KERNEX_TLS_CERT: cert, KERNEX_TLS_KEY: key, KERNEX_MQTTS_PORT: '0' });
    try {
      const ca = await fs.readFile(cert, 'utf8');
      expect(server.httpUrl).toMatch(/^https:/);
      expect(server.caFile).toBeUndefined();
      const res = await httpsGet(`${server.httpUrl}/healthz`, ca);
      expect(res.status).toBe(200);
      expect(res.headers['strict-transport-security']).toMatch(/^max-age=\d+/);
      await expect(fetch(`http://127.0.0.1:${server.httpPort}/healthz`)).rejects.toThrow();
      const d = await makeDevice();
      const client = mqtt.connectAsync(`mqtts://127.0.0.1:${server.mqttsPort}`, {
        ca, rejectUnauthorized: true, reconnectPeriod: 0, clientId: d.id, username: d.id, password: await d.jwt('kernex-mqtt'),
      });
      // The handshake passes; the unknown device is then refused by authentication, not by TLS.
      await expect(client).rejects.toMatchObject({ code: 5 });
    } finally {
      await server.stop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('kernex server with KERNEX_MQTTS_PORT and no certificate files', () => {
  it('makes its CA on first start, names it in the ready line, and keeps it on the next start', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-tls-srv-'));
    await fs.chmod(dataDir, 0o711);
    const env = { KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', KERNEX_MQTTS_PORT: '0' };
    try {
      const first = spawnServer(env);
      const ready = await first.ready;
      expect(ready.caFile).toBe(path.join(dataDir, 'tls', 'ca.crt'));
      expect(ready.mqttsPort).toBeGreaterThan(0);
      const ca = await fs.readFile(ready.caFile!, 'utf8');
      const caKey = await fs.stat(path.join(dataDir, 'tls', 'ca.key'));
      first.proc.kill('SIGTERM');
      expect((await first.exited).code).toBe(0);

      const second = spawnServer(env);
      await second.ready;
      expect(await fs.readFile(path.join(dataDir, 'tls', 'ca.crt'), 'utf8')).toBe(ca);
      // Kept, not made again: the same key file, untouched.
      const keptKey = await fs.stat(path.join(dataDir, 'tls', 'ca.key'));
      expect([keptKey.ino, keptKey.mtimeMs]).toEqual([caKey.ino, caKey.mtimeMs]);
      second.proc.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
