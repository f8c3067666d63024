import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from './test-support/devices.js';
import { spawnAgent, type AgentProcess } from './test-support/spawn-agent.js';
import { spawnServer, type ServerProcess } from './test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from './test-support/test-database.js';
import { freePort } from './net/free-port.js';

/** A port nobody listens on right now (the server must come back on the same one). */
describe('kernex-agent across a server restart (real processes)', () => {
  let database: TestDatabase;
  let dir: string;
  let env: Record<string, string>;
  let server: ServerProcess | undefined;
  let agent: AgentProcess | undefined;
  const adminKey = `kx_restart_test_${Date.now()}`;

  beforeAll(async () => {
    database = await createTestDatabase();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-restart-'));
    env = {
      DATABASE_URL: database.url,
      KERNEX_DATA_DIR: path.join(dir, 'server'),
      KERNEX_HTTP_PORT: String(await freePort()),
      KERNEX_MQTT_PORT: String(await freePort()),
      KERNEX_ADMIN_KEY: adminKey,
    };
  });
  afterAll(async () => {
    await agent?.kill('SIGKILL');
    if (server && server.proc.exitCode === null) {
      server.proc.kill('SIGKILL');
      await server.exited;
    }
    await database?.drop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reconnects on its own after the server restarts, with the same identity', async () => {
    server = spawnServer(env);
    const { httpPort } = await server.ready;
    const httpUrl = `http://127.0.0.1:${httpPort}`;
    const admin = { authorization: `Bearer ${adminKey}` };
    const token = await api('POST', `${httpUrl}/api/v1/enrollment-tokens`, admin, { uses: 1, expiresInS: 600 });

    agent = spawnAgent({
      KERNEX_SERVER: httpUrl,
      KERNEX_STATE_DIR: path.join(dir, 'agent'),
      KERNEX_ENROLL_TOKEN: token.body.token,
      KERNEX_KEY_TYPE: 'p256',
      KERNEX_RECONNECT_MAX_S: '2',
    });
    const id = (await agent.waitFor('registered', { status: 'accepted' })).deviceId as string;
    await agent.waitFor('connected');

    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    await agent.waitFor('disconnected');
    const mark = agent.logs.length;
    // While the server is away the agent keeps trying with backoff; it does not exit.
    await agent.waitFor('reconnecting after backoff', {}, mark);
    expect(agent.proc.exitCode).toBeNull();

    server = spawnServer(env);
    await server.ready;
    await agent.waitFor('connected', {}, mark);
    await expect.poll(async () => (await api('GET', `${httpUrl}/api/v1/devices/${id}`, admin)).body.online, { timeout: 15_000 }).toBe(true);
    expect(agent.logs.filter((l) => l.msg === 'device key created')).toHaveLength(1);
  });
});
