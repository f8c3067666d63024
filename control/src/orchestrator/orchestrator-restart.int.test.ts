import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';
import { freePort } from '../net/free-port.js';

/** A port free now, so a restarted server can bind the same one the agents know. */
describe('orchestrator survives its own death', () => {
  let database: TestDatabase;
  let dataDir: string;
  let server: ServerProcess | undefined;
  const agents: FleetAgent[] = [];

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop().catch(() => {})));
    if (server && server.proc.exitCode === null) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
    await database?.drop();
    for (const a of agents) await fs.rm(a.stateDir, { recursive: true, force: true });
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('finishes a deployment after SIGKILL mid-rollout, with no execution lost or run twice', async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-restart-'));
    const adminKey = `kx_test_${randomBytes(16).toString('hex')}`;
    const env = {
      DATABASE_URL: database.url,
      KERNEX_DATA_DIR: dataDir,
      KERNEX_ADMIN_KEY: adminKey,
      KERNEX_HTTP_PORT: String(await freePort()),
      KERNEX_MQTT_PORT: String(await freePort()),
      KERNEX_ORCHESTRATOR_TICK_MS: '200',
      // The test polls the API while it waits; the default per-key limit would answer 429.
      KERNEX_RATE_LIMIT_PER_MIN: '1000000',
    };
    const headers = { authorization: `Bearer ${adminKey}` };
    server = spawnServer(env);
    await server.ready;
    const url = `http://127.0.0.1:${env.KERNEX_HTTP_PORT}`;

    const token = await enrollmentToken(url, headers, 2);
    agents.push(...(await Promise.all([startAgent(url, token), startAgent(url, token)])));
    // Each install appends a line, so a run twice would show.
    const archive = await makeBundle({ version: '1.0.0', install: '#!/bin/sh\necho "$KERNEX_BUNDLE_VERSION" >> ../.runs\n' });
    const up = await fetch(`${url}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...headers, 'content-type': 'application/gzip' } });
    const bundleId = ((await up.json()) as { id: string }).id;
    const created = await api('POST', `${url}/api/v1/deployments`, headers, {
      bundleId,
      target: { deviceIds: agents.map((a) => a.deviceId) },
      rollout: { phases: [{ percent: 1, waitS: 2 }, { percent: 100, waitS: 0 }] },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    // First phase done, second not yet released (waitS): kill the server there.
    await expect.poll(async () => (await api('GET', `${url}/api/v1/deployments/${id}`, headers)).body.counts.succeeded, { timeout: 30_000 }).toBe(1);
    server.proc.kill('SIGKILL');
    expect((await server.exited).signal).toBe('SIGKILL');

    server = spawnServer(env);
    await server.ready;
    await expect.poll(async () => (await api('GET', `${url}/api/v1/deployments/${id}`, headers)).body.status, { timeout: 45_000 }).toBe('completed');
    const d = (await api('GET', `${url}/api/v1/deployments/${id}`, headers)).body;
    expect(d.counts).toMatchObject({ succeeded: 2, failed: 0, timed_out: 0 });
    for (const a of agents) {
      expect(await a.current('app')).toBe('1.0.0');
      expect(await fs.readFile(path.join(a.stateDir, 'bundles', 'app', '.runs'), 'utf8')).toBe('1.0.0\n');
    }
  });
});
