import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric, refusalCode } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/** An unsigned-looking device JWT naming `sub`: the server must refuse it before it reaches PostgreSQL. */
const forgedToken = (sub: string, aud: string): string => {
  const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${part({ alg: 'ES256', typ: 'JWT' })}.${part({ sub, aud, iat: now, exp: now + 600 })}.AAAA`;
};

// DESIGN §2/§3: an unknown device (and an id with a NUL is one) is refused as
// unknown, not as a server fault; PostgreSQL cannot hold a NUL (DESIGN §3).
describe('device credentials naming an id PostgreSQL cannot hold', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('answers 401, not 500, to a device token whose sub holds a NUL', async () => {
    const res = await fetch(`${server.httpUrl}/api/v1/bundles/00000000-0000-0000-0000-000000000000/blob`, {
      headers: { authorization: `Bearer ${forgedToken('f44f3435e852839c1914\u0000c88', 'kernex-http')}` },
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ statusCode: 401, code: 'KX_UNAUTHORIZED' });
  });

  it('answers CONNACK 5 "not authorized", not 3 "server unavailable", to a clientId holding a NUL', async () => {
    const id = 'f44f3435e852839c1914\u0000c88';
    const code = await refusalCode(
      mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { clientId: id, username: id, password: forgedToken(id, 'kernex-mqtt'), protocolVersion: 4, reconnectPeriod: 0 }),
    );
    expect(code).toBe(5);
    expect(await metric(server.httpUrl, 'kernex_mqtt_refused_total', { reason: 'directory_unavailable' })).toBe(0);
  });
});
