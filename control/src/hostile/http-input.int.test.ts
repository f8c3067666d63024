import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import net from 'node:net';
import { deviceIdFromPublicKey } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/** A body `depth` levels deep, built as text: JSON.stringify itself would overflow the stack. */
const deepJson = (depth: number): string => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

/** An opaque-looking cursor holding any JSON the server never made. */
const cursor = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

interface HostileCase {
  name: string;
  method: 'GET' | 'POST' | 'PATCH';
  /** `{device}` is replaced by a registered device's id. */
  path: string;
  /** A raw JSON text, or a value to serialize. */
  body?: string | Record<string, unknown>;
  contentType?: string;
  /** Sent without the admin key (registration needs none). */
  anonymous?: boolean;
  status: number;
  code: string;
  /** The message must name this field. */
  names: string;
}

describe('hostile HTTP input on a real server', () => {
  let server: TestServer;
  let device: TestDevice;
  let registrationBody: (extra: Record<string, unknown>) => Promise<string>;

  beforeAll(async () => {
    server = await startTestServer();
    device = await makeDevice();
    expect((await register(server.httpUrl, device)).status).toBe(201);
    registrationBody = async (extra) =>
      JSON.stringify({ publicKey: device.publicKeyPem, proof: await device.jwt('kernex-register'), ...extra });
  });
  afterAll(async () => {
    await server?.stop();
  });

  // Each row answered 500 KX_INTERNAL, 200 or 201 before (issue 10, item 13).
  const cases: HostileCase[] = [
    { name: 'registration name with NUL', method: 'POST', path: '/api/v1/devices/register', body: { name: 'pump\u0000' }, anonymous: true, status: 400, code: 'KX_VALIDATION', names: 'body.name' },
    { name: 'registration name with a lone surrogate', method: 'POST', path: '/api/v1/devices/register', body: { name: 'pump\uD800' }, anonymous: true, status: 400, code: 'KX_VALIDATION', names: 'body.name' },
    { name: 'registration hardware with NUL', method: 'POST', path: '/api/v1/devices/register', body: { hardware: { cpu: 'arm\u0000' } }, anonymous: true, status: 400, code: 'KX_VALIDATION', names: 'body.hardware.cpu' },
    { name: 'registration hardware key with a lone surrogate', method: 'POST', path: '/api/v1/devices/register', body: { hardware: { '\uDC00': 1 } }, anonymous: true, status: 400, code: 'KX_VALIDATION', names: 'body.hardware' },
    { name: 'registration hardware nested 5,000 levels', method: 'POST', path: '/api/v1/devices/register', body: 'DEEP', anonymous: true, status: 400, code: 'KX_VALIDATION', names: 'body.hardware' },
    { name: 'registration with an unknown field', method: 'POST', path: '/api/v1/devices/register', body: { enrolmentToken: 'typo' }, anonymous: true, status: 400, code: 'KX_VALIDATION', names: 'body.enrolmentToken' },
    { name: 'device list ?tag=%00', method: 'GET', path: '/api/v1/devices?tag=%00', status: 400, code: 'KX_VALIDATION', names: 'query.tag' },
    { name: 'device list ?status=%00', method: 'GET', path: '/api/v1/devices?status=%00', status: 400, code: 'KX_VALIDATION', names: 'query.status' },
    { name: 'device id with NUL', method: 'GET', path: '/api/v1/devices/%00', status: 400, code: 'KX_VALIDATION', names: 'params.id' },
    { name: 'telemetry from out of range', method: 'GET', path: '/api/v1/devices/{device}/telemetry?from=0000-01-01T00:00:00Z', status: 400, code: 'KX_VALIDATION', names: 'query.from' },
    { name: 'telemetry from past year 9999', method: 'GET', path: '/api/v1/devices/{device}/telemetry?from=%2B275760-09-13T00:00:00Z', status: 400, code: 'KX_VALIDATION', names: 'query.from' },
    { name: 'telemetry cursor with an out-of-range date', method: 'GET', path: `/api/v1/devices/{device}/telemetry?cursor=${cursor(['0000-01-01T00:00:00Z', '1'])}`, status: 400, code: 'KX_VALIDATION', names: 'query.cursor' },
    { name: 'telemetry cursor with a bigint overflow', method: 'GET', path: `/api/v1/devices/{device}/telemetry?cursor=${cursor(['2026-01-01T00:00:00Z', '9999999999999999999'])}`, status: 400, code: 'KX_VALIDATION', names: 'query.cursor' },
    { name: 'device list malformed cursor', method: 'GET', path: '/api/v1/devices?cursor=%%%', status: 400, code: 'KX_VALIDATION', names: 'query.cursor' },
    { name: 'API-key list non-UUID cursor', method: 'GET', path: `/api/v1/api-keys?cursor=${cursor({ createdAt: '2026-01-01T00:00:00Z', id: '-'.repeat(36) })}`, status: 400, code: 'KX_VALIDATION', names: 'query.cursor' },
    { name: 'deployment list non-UUID cursor', method: 'GET', path: `/api/v1/deployments?cursor=${cursor({ at: '2026-01-01T00:00:00Z', id: 'not-a-uuid' })}`, status: 400, code: 'KX_VALIDATION', names: 'query.cursor' },
    { name: 'bundle list cursor with an out-of-range date', method: 'GET', path: `/api/v1/bundles?cursor=${cursor({ at: '0000-01-01T00:00:00Z', id: '00000000-0000-0000-0000-000000000000' })}`, status: 400, code: 'KX_VALIDATION', names: 'query.cursor' },
    { name: 'deployment executions cursor with NUL', method: 'GET', path: `/api/v1/deployments/00000000-0000-4000-8000-000000000000/executions?cursor=${Buffer.from('\u0000').toString('base64url')}`, status: 400, code: 'KX_VALIDATION', names: 'query.cursor' },
    { name: 'enrollment-token list non-UUID cursor', method: 'GET', path: `/api/v1/enrollment-tokens?cursor=${cursor('x')}`, status: 400, code: 'KX_VALIDATION', names: 'query.cursor' },
    { name: 'audit list cursor with a bigint overflow', method: 'GET', path: `/api/v1/audit?cursor=${cursor({ id: '99999999999999999999' })}`, status: 400, code: 'KX_VALIDATION', names: 'query.cursor' },
    { name: 'PATCH device name with NUL', method: 'PATCH', path: '/api/v1/devices/{device}', body: { name: 'a\u0000b' }, status: 400, code: 'KX_VALIDATION', names: 'body.name' },
    { name: 'PATCH device tags with NUL', method: 'PATCH', path: '/api/v1/devices/{device}', body: { tags: ['ok', 'b\u0000'] }, status: 400, code: 'KX_VALIDATION', names: 'body.tags[1]' },
    { name: 'PATCH device unknown field status', method: 'PATCH', path: '/api/v1/devices/{device}', body: { status: 'accepted' }, status: 400, code: 'KX_VALIDATION', names: 'body.status' },
    { name: 'API-key name with NUL', method: 'POST', path: '/api/v1/api-keys', body: { name: 'k\u0000', role: 'viewer' }, status: 400, code: 'KX_VALIDATION', names: 'body.name' },
    { name: 'API-key create unknown field', method: 'POST', path: '/api/v1/api-keys', body: { name: 'k', role: 'viewer', expires: 3 }, status: 400, code: 'KX_VALIDATION', names: 'body.expires' },
    { name: 'token tags with NUL', method: 'POST', path: '/api/v1/enrollment-tokens', body: { uses: 1, expiresInS: 60, tags: ['\u0000'] }, status: 400, code: 'KX_VALIDATION', names: 'body.tags[0]' },
    { name: 'token create with the typo tag', method: 'POST', path: '/api/v1/enrollment-tokens', body: { uses: 1, expiresInS: 60, tag: ['site-a'] }, status: 400, code: 'KX_VALIDATION', names: 'body.tag' },
    { name: 'deployment create unknown field', method: 'POST', path: '/api/v1/deployments', body: { bundleId: '00000000-0000-4000-8000-000000000000', target: { all: true }, dryRun: true }, status: 400, code: 'KX_VALIDATION', names: 'body.dryRun' },
    { name: 'deployment create unknown nested field', method: 'POST', path: '/api/v1/deployments', body: { bundleId: '00000000-0000-4000-8000-000000000000', target: { all: true, tag: 'x' } }, status: 400, code: 'KX_VALIDATION', names: 'body.target.tag' },
    { name: 'a field sent to a route that takes no body', method: 'POST', path: '/api/v1/devices/{device}/accept', body: { force: true }, status: 400, code: 'KX_VALIDATION', names: 'body.force' },
    { name: 'JSON route given text/plain', method: 'POST', path: '/api/v1/api-keys', body: '{"name":"k","role":"viewer"}', contentType: 'text/plain', status: 415, code: 'KX_UNSUPPORTED_MEDIA_TYPE', names: 'application/json' },
    { name: 'bundle upload given text/plain', method: 'POST', path: '/api/v1/bundles', body: 'not an archive', contentType: 'text/plain', status: 415, code: 'KX_UNSUPPORTED_MEDIA_TYPE', names: 'application/gzip' },
    { name: 'registration given text/plain', method: 'POST', path: '/api/v1/devices/register', body: 'hello', contentType: 'text/plain', anonymous: true, status: 415, code: 'KX_UNSUPPORTED_MEDIA_TYPE', names: 'application/json' },
  ];

  it.each(cases)('answers $status $code naming the field: $name', async (c) => {
    let body: string | undefined;
    if (c.body === 'DEEP') body = (await registrationBody({ hardware: 0 })).replace('"hardware":0', `"hardware":${deepJson(5000)}`);
    else if (typeof c.body === 'string') body = c.body;
    else if (c.body) body = c.path.endsWith('/register') ? await registrationBody(c.body) : JSON.stringify(c.body);
    const res = await fetch(`${server.httpUrl}${c.path.replace('{device}', device.id)}`, {
      method: c.method,
      headers: { ...(c.anonymous ? {} : server.adminHeaders), ...(body === undefined ? {} : { 'content-type': c.contentType ?? 'application/json' }) },
      body,
    });
    const answer = (await res.json()) as { statusCode: number; code: string; message: string };
    expect({ status: res.status, code: answer.code }).toEqual({ status: c.status, code: c.code });
    expect(answer.message).toContain(c.names);
  });

  it('changes nothing when a PATCH is refused for an unknown field', async () => {
    const before = await api('GET', `${server.httpUrl}/api/v1/devices/${device.id}`, server.adminHeaders);
    expect((await api('PATCH', `${server.httpUrl}/api/v1/devices/${device.id}`, server.adminHeaders, { name: 'renamed', status: 'accepted' })).status).toBe(400);
    expect((await api('GET', `${server.httpUrl}/api/v1/devices/${device.id}`, server.adminHeaders)).body).toEqual(before.body);
  });

  it('refuses an RSA key with public exponent 3 (400 naming publicKey), though its proof is well signed', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 });
    // Signed by hand: our own signer refuses such a key too.
    const b64 = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ sub: deviceIdFromPublicKey(publicKey), aud: 'kernex-register', iat: now, exp: now + 300 })}`;
    const proof = `${input}.${cryptoSign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
    const res = await api('POST', `${server.httpUrl}/api/v1/devices/register`, {}, { publicKey: publicKey.export({ type: 'spki', format: 'pem' }), proof });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'KX_VALIDATION', message: expect.stringMatching(/^body\.publicKey: .*65537/) });
    expect(await server.sql`select id from devices where id = ${deviceIdFromPublicKey(publicKey)}`).toHaveLength(0);
  });
});

describe('slow HTTP clients on a real server', () => {
  let server: TestServer;
  beforeAll(async () => {
    // Short bounds so the test ends soon; the defaults are in the README's configuration table.
    server = await startTestServer({ KERNEX_HTTP_HEADERS_TIMEOUT_MS: '500', KERNEX_HTTP_BODY_TIMEOUT_MS: '500', KERNEX_HTTP_IDLE_TIMEOUT_MS: '60000' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const slowClients = async (limit: 'headers' | 'body'): Promise<number> => {
    const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
    return Number(new RegExp(`^kernex_http_slow_clients_total\\{limit="${limit}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  };

  /**
   * Opens a socket to the server, writes `head` at once, then one more byte each time the
   * previous one was written (an endless trickle), until the server closes it.
   */
  function trickle(head: string, byte: string): Promise<void> {
    const { port } = new URL(server.httpUrl);
    return new Promise((resolve) => {
      const socket = net.connect(Number(port), '127.0.0.1');
      let timer: NodeJS.Timeout | undefined;
      const drip = (): void => {
        timer = setTimeout(() => {
          if (!socket.destroyed) socket.write(byte, drip);
        }, 100);
      };
      socket.on('connect', () => socket.write(head, drip));
      socket.on('data', () => {}); // a 408 answer, if any, is fine: what matters is the close
      socket.on('error', () => {}); // a reset is a close too
      socket.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  it('closes 50 connections trickling header bytes to the register route', async () => {
    const head = 'POST /api/v1/devices/register HTTP/1.1\r\nHost: 127.0.0.1\r\n';
    const before = await slowClients('headers');
    await Promise.all(Array.from({ length: 50 }, () => trickle(head, 'X')));
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    expect((await slowClients('headers')) - before).toBe(50);
  });

  it('closes 50 connections trickling a JSON body to the register route', async () => {
    const head = 'POST /api/v1/devices/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"name":"';
    const before = await slowClients('body');
    await Promise.all(Array.from({ length: 50 }, () => trickle(head, 'x')));
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    expect((await slowClients('body')) - before).toBe(50);
  });

  it('closes a connection trickling the body of a request already refused (401) before its body was read', async () => {
    const head = 'POST /api/v1/api-keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"name":"';
    const before = await slowClients('body');
    await trickle(head, 'x');
    expect((await slowClients('body')) - before).toBe(1);
  });
});
