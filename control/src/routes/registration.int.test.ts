import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, makeDevice, register } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

describe('POST /api/v1/devices/register', () => {
  let server: TestServer;
  let url: string;
  const deviceCount = async (): Promise<number> => (await server.sql`select count(*)::int as n from devices`)[0]!.n;
  const newToken = async (body: Record<string, unknown>) => {
    const res = await api('POST', `${url}/api/v1/enrollment-tokens`, server.adminHeaders, body);
    expect(res.status).toBe(201);
    return res.body as { id: string; token: string; uses: number; expiresAt: string };
  };

  beforeAll(async () => {
    server = await startTestServer();
    url = server.httpUrl;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('registers a new key as pending (201) and answers the same device for the same key (200)', async () => {
    const device = await makeDevice();
    const first = await register(url, device, { name: 'pump-1', hardware: { cpu: 'arm64' }, tags: ['ignored'] });
    expect(first.status).toBe(201);
    expect(first.body).toEqual({
      deviceId: device.id,
      status: 'pending',
      mqtt: [`mqtt://127.0.0.1:${server.mqttPort}`],
      serverPublicKey: server.services.serverKey.publicKeyPem,
      serverTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(Math.abs(Date.parse(first.body.serverTime as string) - Date.now())).toBeLessThan(60_000);

    const again = await register(url, device);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ deviceId: device.id, status: 'pending' });

    const got = await api('GET', `${url}/api/v1/devices/${device.id}`, server.adminHeaders);
    expect(got.body).toEqual({
      id: device.id,
      name: 'pump-1',
      status: 'pending',
      online: false,
      lastSeenAt: null,
      tags: [],
      hardware: { cpu: 'arm64' },
      bundles: {},
      telemetry: null,
      telemetryAt: null,
      createdAt: expect.any(String),
    });
  });

  it('registers an RSA-4096 key too', async () => {
    const device = await makeDevice('rsa');
    const res = await register(url, device);
    expect(res.status).toBe(201);
    expect(res.body.deviceId).toBe(device.id);
  });

  it('accepts with a valid enrollment token, applying only the token tags, and counts uses', async () => {
    const token = await newToken({ uses: 1, expiresInS: 3600, tags: ['site-a', 'pumps'] });
    expect(token).toMatchObject({ id: expect.any(String), token: expect.stringMatching(/^kxe_/), uses: 1, expiresAt: expect.any(String) });
    const device = await makeDevice();
    const res = await register(url, device, { enrollmentToken: token.token, tags: ['root'] });
    expect(res.status).toBe(201);
    expect(res.body.status).toBe('accepted');
    const got = await api('GET', `${url}/api/v1/devices/${device.id}`, server.adminHeaders);
    expect(got.body.tags).toEqual(['site-a', 'pumps']);

    const before = await deviceCount();
    const other = await register(url, await makeDevice(), { enrollmentToken: token.token });
    expect(other.status).toBe(401);
    expect(other.body.code).toBe('KX_ENROLLMENT_TOKEN_INVALID');
    expect(await deviceCount()).toBe(before);

    const [stored] = await server.sql`select token_hash, uses_left from enrollment_tokens where id = ${token.id}`;
    expect(stored!.uses_left).toBe(0);
    expect(stored!.token_hash).not.toContain(token.token);
  });

  it('lets exactly as many devices through as the token has uses, even when they race', async () => {
    const token = await newToken({ uses: 2, expiresInS: 3600 });
    const devices = await Promise.all(Array.from({ length: 6 }, () => makeDevice()));
    const results = await Promise.all(devices.map((d) => register(url, d, { enrollmentToken: token.token })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(2);
    expect(results.filter((r) => r.status === 401)).toHaveLength(4);
  });

  it('refuses revoked and expired tokens and writes nothing', async () => {
    const revoked = await newToken({ uses: 5, expiresInS: 3600 });
    expect((await api('DELETE', `${url}/api/v1/enrollment-tokens/${revoked.id}`, server.adminHeaders)).body.revokedAt).toEqual(expect.any(String));
    const expired = await newToken({ uses: 5, expiresInS: 3600 });
    await server.sql`update enrollment_tokens set expires_at = now() - interval '1 second' where id = ${expired.id}`;
    const before = await deviceCount();
    for (const t of [revoked, expired, { token: 'kxe_made-up' }]) {
      const res = await register(url, await makeDevice(), { enrollmentToken: t.token });
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('KX_ENROLLMENT_TOKEN_INVALID');
    }
    expect(await deviceCount()).toBe(before);
  });

  it('accepts a pending device that registers again with a token', async () => {
    const device = await makeDevice();
    expect((await register(url, device)).body.status).toBe('pending');
    const token = await newToken({ uses: 1, expiresInS: 600, tags: ['late'] });
    const res = await register(url, device, { enrollmentToken: token.token });
    expect(res).toMatchObject({ status: 200, body: { status: 'accepted' } });
  });

  it('answers 400 naming the problem for malformed bodies, and writes nothing', async () => {
    const before = await deviceCount();
    const device = await makeDevice();
    const proof = await device.jwt('kernex-register');
    const post = (body: string) =>
      fetch(`${url}/api/v1/devices/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const ed25519 = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const cases: Array<[string, RegExp]> = [
      ['{not json', /JSON/i],
      ['[]', /object/],
      [JSON.stringify({ publicKey: device.publicKeyPem }), /proof/],
      [JSON.stringify({ publicKey: 'not a key', proof }), /publicKey/],
      [JSON.stringify({ publicKey: ed25519, proof }), /unsupported key type/],
      [JSON.stringify({ publicKey: rsa1024, proof }), /2048 to 4096/],
      [JSON.stringify({ publicKey: device.publicKeyPem, proof, hardware: { blob: 'x'.repeat(5000) } }), /hardware is larger than 4096/],
      [JSON.stringify({ publicKey: device.publicKeyPem, proof, hardware: 'a string' }), /hardware/],
    ];
    for (const [body, message] of cases) {
      const res = await post(body);
      const answer = (await res.json()) as { code: string; message: string };
      expect(res.status, body.slice(0, 60)).toBe(400);
      expect(answer.code).toBe('KX_VALIDATION');
      expect(answer.message).toMatch(message);
    }
    expect(await deviceCount()).toBe(before);
  });

  it('answers 401 for forged, expired, cross-device and wrong-audience proofs', async () => {
    const device = await makeDevice();
    const other = await makeDevice();
    const before = await deviceCount();
    const now = Math.floor(Date.now() / 1000);
    const proofs = [
      await other.jwt('kernex-register', { deviceId: device.id }), // signed by another key
      await device.jwt('kernex-mqtt'), // a credential for another audience, replayed
      await device.jwt('kernex-register', { now: now - 7200, ttlS: 3600 }), // expired
      await other.jwt('kernex-register'), // another device's proof with this key
      'a.b.c',
    ];
    for (const proof of proofs) {
      const res = await fetch(`${url}/api/v1/devices/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ publicKey: device.publicKeyPem, proof }),
      });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe('KX_BAD_PROOF');
    }
    expect(await deviceCount()).toBe(before);
  });

  it('answers 403 to a rejected or decommissioned key', async () => {
    const rejected = await makeDevice();
    const gone = await makeDevice();
    await register(url, rejected);
    await register(url, gone);
    expect((await api('POST', `${url}/api/v1/devices/${rejected.id}/reject`, server.adminHeaders)).body.status).toBe('rejected');
    expect((await api('DELETE', `${url}/api/v1/devices/${gone.id}`, server.adminHeaders)).body.status).toBe('decommissioned');
    for (const d of [rejected, gone]) {
      const res = await register(url, d);
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('KX_DEVICE_REFUSED');
    }
  });

  it('tells devices the KERNEX_PUBLIC_URL host', async () => {
    const other = await startTestServer({ KERNEX_PUBLIC_URL: 'https://fleet.example.com' });
    try {
      const res = await register(other.httpUrl, await makeDevice());
      expect(res.body.mqtt).toEqual([`mqtt://fleet.example.com:${other.mqttPort}`]);
    } finally {
      await other.stop();
    }
  });

  it('holds registration to KERNEX_REGISTER_RATE_LIMIT_PER_MIN per address', async () => {
    const limited = await startTestServer({ KERNEX_REGISTER_RATE_LIMIT_PER_MIN: '2' });
    try {
      const d = await makeDevice();
      expect((await register(limited.httpUrl, d)).status).toBe(201);
      expect((await register(limited.httpUrl, d)).status).toBe(200);
      const third = await register(limited.httpUrl, d);
      expect(third.status).toBe(429);
      expect(third.body.code).toBe('KX_RATE_LIMITED');
    } finally {
      await limited.stop();
    }
  });
});

describe('registration limits with default settings (DESIGN §2)', () => {
  let server: TestServer;
  beforeAll(async () => {
    // '' means unset: the defaults of config.ts, not the test server's raised limits.
    server = await startTestServer({ KERNEX_RATE_LIMIT_PER_MIN: '', KERNEX_REGISTER_RATE_LIMIT_PER_MIN: '' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('lets 1,000 devices with a valid token register from one address, while token-less and failed attempts stay limited', async () => {
    const res = await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 1000, expiresInS: 3600 });
    expect(res.status).toBe(201);
    const token = (res.body as { token: string }).token;

    const statuses: number[] = [];
    const queue = Array.from({ length: 1000 }, (_, i) => i);
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (queue.shift() !== undefined) statuses.push((await register(server.httpUrl, await makeDevice(), { enrollmentToken: token })).status);
      }),
    );
    expect(statuses.filter((s) => s === 201)).toHaveLength(1000);
    const accepted = await server.sql`select count(*)::int as n from devices where status = 'accepted'`;
    expect(accepted[0]!.n).toBe(1000);

    // Token-less: 10 a minute per address (the default), then 429.
    for (let i = 0; i < 10; i++) expect((await register(server.httpUrl, await makeDevice())).status).toBe(201);
    const eleventh = await register(server.httpUrl, await makeDevice());
    expect(eleventh).toMatchObject({ status: 429, body: { code: 'KX_RATE_LIMITED' } });

    // The token is used up: each further attempt fails (401) and costs the address, until it is refused (429).
    const failed: number[] = [];
    for (let i = 0; i < 11; i++) failed.push((await register(server.httpUrl, await makeDevice(), { enrollmentToken: token })).status);
    expect(failed).toEqual([...Array(10).fill(401), 429]);
  });
});
