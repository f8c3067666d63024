import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { cmdTopic, telemetryTopic } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTILE_ARCHIVES, HOSTILE_SERVER_ENV } from '../../../shared/src/test-support/hostile-archives.js';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { connectDevice } from '../test-support/mqtt.js';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

/**
 * Hostile uploads against a real `kernex server` process: an uncaught error
 * would end that process (and fail these tests) instead of killing vitest.
 */
describe('hostile bundle uploads (a real kernex server process)', () => {
  let database: TestDatabase;
  let dir: string;
  let server: ServerProcess;
  let httpUrl: string;
  let mqttUrl: string;
  let tmpDir: string;
  let token: string;
  const adminKey = `kx_hostile_uploads_${Date.now()}`;
  const admin = { authorization: `Bearer ${adminKey}` };
  const clients: MqttClient[] = [];

  /** POSTs an upload, whole or streamed chunk by chunk from an async iterable. */
  async function upload(body: Buffer | AsyncIterable<Buffer>, contentType = 'application/gzip'): Promise<{ status: number; body: any }> {
    const res = await fetch(`${httpUrl}/api/v1/bundles`, {
      method: 'POST',
      headers: { ...admin, 'content-type': contentType },
      body: Buffer.isBuffer(body) ? body : (readableStreamFrom(body) as never),
      ...(Buffer.isBuffer(body) ? {} : { duplex: 'half' }),
    } as RequestInit);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  async function device(): Promise<TestDevice> {
    const d = await makeDevice();
    expect((await register(httpUrl, d, { enrollmentToken: token })).body.status).toBe('accepted');
    return d;
  }

  /** A connected device session that fails the test, instead of hanging it, if the server drops it. */
  async function session(d: TestDevice): Promise<{ client: MqttClient; publish: (telemetry: object) => Promise<void>; ping: () => Promise<void> }> {
    const client = await connectDevice(mqttUrl, d);
    clients.push(client);
    let dropped: Error | undefined;
    const gone = new Promise<never>((_resolve, reject) =>
      client.once('close', () => {
        dropped = new Error('the server closed the device session');
        reject(dropped);
      }),
    );
    gone.catch(() => undefined);
    return {
      client,
      async publish(telemetry) {
        if (dropped) throw dropped;
        // QoS 1: the PUBACK proves the broker served this device.
        await Promise.race([client.publishAsync(telemetryTopic(d.id), JSON.stringify(telemetry), { qos: 1 }), gone]);
      },
      async ping() {
        if (dropped) throw dropped;
        const pong = new Promise<void>((resolve) => {
          const seen = (packet: { cmd: string }): void => {
            if (packet.cmd !== 'pingresp') return;
            client.off('packetreceive', seen);
            resolve();
          };
          client.on('packetreceive', seen);
        });
        client.sendPing();
        await Promise.race([pong, gone]);
      },
    };
  }

  /** Uploads the server has ended, stored or refused, each with its temp file already removed. */
  const uploadsEnded = async (): Promise<number> => {
    const text = await (await fetch(`${httpUrl}/metrics`)).text();
    return [...text.matchAll(/^kernex_bundle_uploads_total\{outcome="(?:stored|refused)"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  };
  const leftovers = async (): Promise<string[]> => (await fs.readdir(tmpDir)).concat((await fs.readdir(path.dirname(tmpDir))).filter((f) => f.endsWith('.part')));

  beforeAll(async () => {
    database = await createTestDatabase();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-hostile-uploads-'));
    server = spawnServer({
      ...HOSTILE_SERVER_ENV,
      DATABASE_URL: database.url,
      KERNEX_DATA_DIR: dir,
      KERNEX_HTTP_PORT: '0',
      KERNEX_MQTT_PORT: '0',
      KERNEX_ADMIN_KEY: adminKey,
      KERNEX_RATE_LIMIT_PER_MIN: '1000000',
      KERNEX_REGISTER_RATE_LIMIT_PER_MIN: '1000000',
    });
    const ready = await server.ready;
    httpUrl = `http://127.0.0.1:${ready.httpPort}`;
    mqttUrl = `mqtt://127.0.0.1:${ready.mqttPort}`;
    tmpDir = path.join(dir, 'bundles', 'tmp');
    token = (await api('POST', `${httpUrl}/api/v1/enrollment-tokens`, admin, { uses: 100, expiresInS: 3600 })).body.token;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    if (server && server.proc.exitCode === null && server.proc.signalCode === null) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
    await database?.drop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it.each(HOSTILE_ARCHIVES.map((a) => [a.what, a] as const))('answers %s as the agent does, leaving no temp file', async (_what, row) => {
    const res = await upload(row.bytes());
    if (!row.refusal) {
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ name: 'hostile', version: '1.0.0' });
    } else {
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(row.code);
      expect(res.body.message).toMatch(row.refusal);
    }
    expect(await leftovers()).toEqual([]);
    expect(server.proc.exitCode).toBeNull();
  });

  it('refuses streaming uploads with their 4xx while a device keeps publishing and being served', async () => {
    const d = await device();
    const { publish, ping } = await session(d);
    let seq = 0;
    await publish({ seq: ++seq });
    const crashers = HOSTILE_ARCHIVES.filter((a) => a.streaming);
    expect(crashers.length).toBeGreaterThanOrEqual(3);
    for (const row of crashers) {
      const bytes = row.bytes();
      // 64 KiB at a time; after every MiB the device publishes and pings, and must get
      // its PUBACK and PINGRESP before the upload goes on: it is served while the refusal streams.
      async function* chunks(): AsyncGenerator<Buffer> {
        for (let at = 0; at < bytes.length; at += 64 * 1024) {
          yield bytes.subarray(at, at + 64 * 1024);
          if (at % (1024 * 1024) === 0) {
            await publish({ seq: ++seq });
            await ping();
          }
        }
      }
      const res = await upload(chunks());
      expect(res.status).toBe(400);
      expect(res.body.message).toMatch(row.refusal!);
      expect(await leftovers()).toEqual([]);
      expect((await fetch(`${httpUrl}/healthz`)).status).toBe(200);
    }
    await publish({ seq: ++seq });
    expect(server.proc.exitCode).toBeNull();
    // The last sample arrived in PostgreSQL, and the session never dropped.
    await expect
      .poll(async () => {
        const shown = (await api('GET', `${httpUrl}/api/v1/devices/${d.id}`, admin)).body;
        return { online: shown.online, telemetry: shown.telemetry };
      })
      .toEqual({ online: true, telemetry: { seq } });
  });

  it('keeps no temp file of an upload whose client goes away mid-body, and stays up', async () => {
    const bytes = HOSTILE_ARCHIVES.find((a) => a.what.startsWith('an unsafe first entry'))!.bytes();
    const honest = await makeBundle({ name: 'cut', version: '1.0.0', padding: 4 * 1024 * 1024 });
    for (const body of [honest, bytes]) {
      const ended = await uploadsEnded();
      await new Promise<void>((resolve) => {
        const req = http.request(`${httpUrl}/api/v1/bundles`, {
          method: 'POST',
          headers: { ...admin, 'content-type': 'application/gzip', 'content-length': String(body.length) },
        });
        req.on('error', () => resolve());
        req.on('response', () => resolve());
        // Half the body reaches the server, then the connection is reset.
        req.write(body.subarray(0, body.length / 2), () => req.destroy());
        req.on('close', () => resolve());
      });
      // Only once the server has ended that upload (its temp file removed) does an empty directory mean anything.
      await expect.poll(uploadsEnded).toBe(ended + 1);
      expect(await leftovers()).toEqual([]);
      expect((await fetch(`${httpUrl}/healthz`)).status).toBe(200);
    }
    const listed = await api('GET', `${httpUrl}/api/v1/bundles?name=cut`, admin);
    expect(listed.body.items).toEqual([]);
    expect(server.proc.exitCode).toBeNull();
  });

  it('answers a text/plain upload 415 naming application/gzip, without reading the body', async () => {
    const small = await upload(Buffer.from('just text'), 'text/plain');
    expect(small.status).toBe(415);
    expect(small.body).toMatchObject({ code: 'KX_UNSUPPORTED_MEDIA_TYPE' });
    expect(small.body.message).toContain('application/gzip');
    expect((await upload(Buffer.from('{}'), 'application/json')).status).toBe(415);

    // Announces 100 MiB and sends none of it: the 415 must come without the body.
    const early = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${httpUrl}/api/v1/bundles`, {
        method: 'POST',
        headers: { ...admin, 'content-type': 'text/plain', 'content-length': String(100 * 1024 * 1024) },
      });
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(early.status).toBe(415);
    expect(JSON.parse(early.body)).toMatchObject({ code: 'KX_UNSUPPORTED_MEDIA_TYPE' });
    expect(await leftovers()).toEqual([]);
    expect(server.proc.exitCode).toBeNull();
  });

  it("answers another device's bundle blob with the same 404 as an unknown bundle", async () => {
    const [mine, other] = await Promise.all([device(), device()]);
    const { client } = await session(mine);
    await client.subscribeAsync(cmdTopic(mine.id), { qos: 1 });
    const created = await upload(await makeBundle({ name: 'hostile', version: '2.0.0' }));
    expect(created.status).toBe(201);
    const command = new Promise<unknown>((resolve) => client.once('message', (_t, p) => resolve(JSON.parse(p.toString()))));
    const deployed = await api('POST', `${httpUrl}/api/v1/deployments`, admin, { bundleId: created.body.id, target: { deviceIds: [mine.id] } });
    expect(deployed.status).toBe(201);
    expect(await command).toMatchObject({ type: 'deploy' });

    const fetchAs = async (d: TestDevice, id: string): Promise<{ status: number; body: unknown }> => {
      const res = await fetch(`${httpUrl}/api/v1/bundles/${id}/blob`, { headers: { authorization: `Bearer ${await d.jwt('kernex-http')}` } });
      return { status: res.status, body: res.status === 200 ? undefined : await res.json() };
    };
    expect((await fetchAs(mine, created.body.id)).status).toBe(200);
    const unknown = await fetchAs(other, '00000000-0000-4000-8000-000000000000');
    expect(unknown.status).toBe(404);
    expect(await fetchAs(other, created.body.id)).toEqual(unknown);
  });
});

/** A web ReadableStream over an async iterable (fetch's streamed request body). */
function readableStreamFrom(source: AsyncIterable<Buffer>): ReadableStream<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await it.return?.();
    },
  });
}
