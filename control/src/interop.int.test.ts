import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { cmdTopic, eventsTopic } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, deviceFromKeys, register } from './test-support/devices.js';
import { brokerEvent, connectDevice, metric } from './test-support/mqtt.js';
import { startTestServer, type TestServer } from './test-support/test-server.js';
import { makeCa } from './tls/auto-ca.js';

const run = promisify(execFile);

/** Runs a command to its end; never rejects, answers exit code and output. */
async function exec(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(input ?? '');
  const [code] = (await once(child, 'close')) as [number | null];
  return { code: code ?? -1, stdout, stderr };
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/** An RS256 JWT signed by `openssl dgst` (RSASSA-PKCS1-v1_5 / SHA-256), not by our code. */
async function opensslJwt(keyFile: string, sub: string, aud: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const signingInput = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub, aud, iat: now, exp: now + 600 }))}`;
  const child = spawn('openssl', ['dgst', '-sha256', '-sign', keyFile], { stdio: ['pipe', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stdin.end(signingInput);
  await once(child, 'close');
  return `${signingInput}.${b64url(Buffer.concat(chunks))}`;
}

describe('interoperability with tools nobody here wrote', () => {
  let server: TestServer;
  /** Resolves when the broker has granted `deviceId` its `kx/{id}/cmd` subscription (KernexBroker 'device:subscribed'). */
  function cmdSubscribed(deviceId: string): Promise<void> {
    return new Promise((resolve) => {
      const onSubscribed = (id: string): void => {
        if (id !== deviceId) return;
        server.broker.off('device:subscribed', onSubscribed);
        resolve();
      };
      server.broker.on('device:subscribed', onSubscribed);
    });
  }
  let dir: string;
  let token: string;
  /** A device whose key, id and JWTs all come from openssl. */
  const device = { id: '', keyFile: '', publicKeyPem: '' };

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_MQTTS_PORT: '0' });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-interop-'));
    token = (await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 10, expiresInS: 600 })).body.token;
    device.keyFile = path.join(dir, 'rsa.pem');
    await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', device.keyFile]);
    device.publicKeyPem = (await run('openssl', ['pkey', '-in', device.keyFile, '-pubout'])).stdout;
    // deviceId by DESIGN §2, computed by openssl: SHA-256 over the SPKI DER, first 24 hex characters.
    const der = path.join(dir, 'rsa.der');
    await run('openssl', ['pkey', '-in', device.keyFile, '-pubout', '-outform', 'DER', '-out', der]);
    device.id = (await run('openssl', ['dgst', '-sha256', '-r', der])).stdout.slice(0, 24);
  });
  afterAll(async () => {
    await server?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('registers a key made by openssl genpkey, with a proof signed by openssl', async () => {
    const res = await fetch(`${server.httpUrl}/api/v1/devices/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        publicKey: device.publicKeyPem,
        proof: await opensslJwt(device.keyFile, device.id, 'kernex-register'),
        enrollmentToken: token,
      }),
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ deviceId: device.id, status: 'accepted' });
  });

  it('registers and connects a P-256 key made by openssl genpkey', async () => {
    const keyFile = path.join(dir, 'ec.pem');
    await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
    const ec = deviceFromKeys({
      privateKeyPem: await fs.readFile(keyFile, 'utf8'),
      publicKeyPem: (await run('openssl', ['pkey', '-in', keyFile, '-pubout'])).stdout,
    });
    expect((await register(server.httpUrl, ec, { enrollmentToken: token })).status).toBe(201);
    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, ec);
    await client.endAsync();
  });

  it('lets mosquitto_sub and mosquitto_pub in with device credentials, on the device own topics only', async () => {
    const jwt = await opensslJwt(device.keyFile, device.id, 'kernex-mqtt');
    const auth = ['-h', '127.0.0.1', '-p', String(server.mqttPort), '-i', device.id, '-u', device.id, '-P', jwt, '-V', 'mqttv311'];

    // Subscribe to its own cmd and receive a command the server publishes.
    const subscribed = cmdSubscribed(device.id);
    const sub = exec('mosquitto_sub', [...auth, '-t', cmdTopic(device.id), '-q', '1', '-C', '1', '-W', '20']);
    await subscribed;
    await server.broker.publishCommand(device.id, { id: 'c1', type: 'cancel', executionId: 'e1', issuedAt: new Date().toISOString() });
    const received = await sub;
    expect(received.code).toBe(0);
    expect(JSON.parse(received.stdout)).toMatchObject({ id: 'c1', type: 'cancel' });

    // Publish an event on its own topic: it reaches the server.
    const event = brokerEvent(server.broker, 'device:event');
    const pub = await exec('mosquitto_pub', [...auth, '-t', eventsTopic(device.id), '-q', '1', '-m', JSON.stringify({ executionId: 'e1', state: 'received', ts: 1 })]);
    expect(pub.code).toBe(0);
    expect(await event).toEqual([device.id, { executionId: 'e1', state: 'received', ts: 1 }]);

    // Another device's topic: acknowledged (MQTT 3.1.1 has no refusal) but dropped and counted.
    const before = await metric(server.httpUrl, 'kernex_mqtt_refused_total', { reason: 'acl_publish' });
    const foreign = await exec('mosquitto_pub', [...auth, '-t', eventsTopic('0'.repeat(24)), '-q', '1', '-m', '{}']);
    expect(foreign.code).toBe(0);
    expect(await metric(server.httpUrl, 'kernex_mqtt_refused_total', { reason: 'acl_publish' })).toBe(before + 1);

    // A wildcard subscription is denied.
    const wildcard = await exec('mosquitto_sub', [...auth, '-t', 'kx/+/cmd', '-C', '1', '-W', '5']);
    expect(wildcard.stderr.trim()).toBe('All subscription requests were denied.');

    // Wrong credentials: CONNACK "not authorised".
    const other = await exec('mosquitto_sub', [...auth.slice(0, 4), '-i', device.id, '-u', device.id, '-P', 'x.y.z', '-V', 'mqttv311', '-t', cmdTopic(device.id), '-W', '5']);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/not authori[sz]ed/i);
  });

  it('lets mosquitto_sub in over TLS when it pins the server CA, and not with another CA', async () => {
    const jwt = await opensslJwt(device.keyFile, device.id, 'kernex-mqtt');
    const otherCa = path.join(dir, 'other-ca.crt');
    await fs.writeFile(otherCa, makeCa('another CA').certPem);
    const args = (cafile: string) => [
      '-h', '127.0.0.1', '-p', String(server.mqttsPort), '--cafile', cafile,
      '-i', device.id, '-u', device.id, '-P', jwt, '-V', 'mqttv311', '-t', cmdTopic(device.id), '-q', '1', '-C', '1', '-W', '20',
    ];
    const subscribed = cmdSubscribed(device.id);
    const sub = exec('mosquitto_sub', args(server.caFile!));
    await subscribed;
    await server.broker.publishCommand(device.id, { id: 'c2', type: 'cancel', executionId: 'e2', issuedAt: new Date().toISOString() });
    const received = await sub;
    expect(received.code).toBe(0);
    expect(JSON.parse(received.stdout)).toMatchObject({ id: 'c2' });

    const refused = await exec('mosquitto_sub', args(otherCa));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/certificate verify failed|tls|ssl/i);
  });
});
