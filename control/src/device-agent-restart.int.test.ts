import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceIdFromPublicKey } from '@kernex/shared';
import { api } from './test-support/devices.js';
import { until } from './test-support/fleet.js';
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

    const stateDir = path.join(dir, 'agent');
    agent = spawnAgent({
      KERNEX_SERVER: httpUrl,
      KERNEX_STATE_DIR: stateDir,
      KERNEX_ENROLL_TOKEN: token.body.token,
      KERNEX_KEY_TYPE: 'p256',
      KERNEX_RECONNECT_MAX_S: '2',
    });
    const keyFile = path.join(stateDir, 'device.key');
    await until('the agent has made its key', () => fs.access(keyFile).then(() => true, () => false));
    const key = await fs.readFile(keyFile, 'utf8');
    const id = deviceIdFromPublicKey(createPrivateKey(key));
    const device = async (): Promise<{ status?: string; online?: boolean }> => (await api('GET', `${httpUrl}/api/v1/devices/${id}`, admin)).body ?? {};
    await expect.poll(device, { timeout: 30_000 }).toMatchObject({ status: 'accepted', online: true });

    server.proc.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    // While the server is away the agent keeps trying with backoff; it does not exit.
    expect(agent.proc.exitCode).toBeNull();

    server = spawnServer(env);
    await server.ready;
    // A starting server shows every device offline; online again means the agent reconnected on its own.
    await expect.poll(async () => (await device()).online, { timeout: 30_000 }).toBe(true);
    expect(agent.proc.exitCode).toBeNull();
    // Same identity: the key on disk is the one it started with.
    expect(await fs.readFile(keyFile, 'utf8')).toBe(key);
  });
});
