import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './test-support/test-database.js';
import { startTcpProxy, type TcpProxy } from './test-support/tcp-proxy.js';
import { startTestServer, type TestServer } from './test-support/test-server.js';

describe('/readyz', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    const target = new URL(db.url);
    proxy = await startTcpProxy(Number(target.port));
    target.port = String(proxy.port);
    server = await startTestServer({ DATABASE_URL: target.toString() });
  });
  afterAll(async () => {
    await server?.stop();
    await proxy?.close();
    await db?.drop();
  });

  const readyz = async (): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${server.httpUrl}/readyz`);
    return { status: res.status, body: await res.json() };
  };

  it('turns 503 when the database goes away and 200 when it returns', async () => {
    expect((await readyz()).status).toBe(200);

    await proxy.cut();
    expect(await readyz()).toEqual({ status: 503, body: { status: 'not ready', checks: { started: true, database: false, broker: true, telemetryWriter: true, presenceWriter: true, eventsWriter: true } } });
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);

    await proxy.restore();
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', checks: { started: true, database: true, broker: true, telemetryWriter: true, presenceWriter: true, eventsWriter: true } } });
  });

  it('turns 503 when the broker stops listening', async () => {
    await server.broker.close();
    expect(await readyz()).toMatchObject({ status: 503, body: { checks: { broker: false } } });
  });
});
