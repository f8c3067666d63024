import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { freePort } from '../net/free-port.js';
import { api } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { runCli } from '../test-support/run-cli.js';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';

/**
 * DESIGN §10 end to end with the default installation (embedded PostgreSQL): a backup taken
 * from a running server, restored into an empty data directory, serves the same fleet:
 * a real agent reconnects with the identity it has, and a bundle uploaded before the backup
 * deploys and verifies after the restore.
 */
describe('kernex backup and restore (embedded PostgreSQL, real processes)', () => {
  let dir: string;
  let ports: Record<string, string>;
  let server: ServerProcess | undefined;
  let agent: FleetAgent | undefined;
  const adminKey = `kx_backup_test_${Date.now()}`;

  const stopServer = async (): Promise<void> => {
    if (server && server.proc.exitCode === null) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
  };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-backup-'));
    await fs.chmod(dir, 0o755); // as root, the embedded PostgreSQL runs as 'postgres' and must enter it
    ports = { KERNEX_HTTP_PORT: String(await freePort()), KERNEX_MQTT_PORT: String(await freePort()), KERNEX_ORCHESTRATOR_TICK_MS: '200' };
  });
  afterAll(async () => {
    await agent?.stop().catch(() => {});
    if (server && server.proc.exitCode === null) server.proc.kill('SIGKILL');
    await server?.exited;
    if (agent) await fs.rm(agent.stateDir, { recursive: true, force: true });
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('brings back devices, keys, tokens, bundles, deployments, audit and telemetry; the agent reconnects and a bundle deploys', async () => {
    const original = { ...ports, KERNEX_DATA_DIR: path.join(dir, 'original'), KERNEX_ADMIN_KEY: adminKey };
    server = spawnServer(original);
    const { httpPort } = await server.ready;
    const url = `http://127.0.0.1:${httpPort}`;
    const admin = { authorization: `Bearer ${adminKey}` };

    const operatorKey = await api('POST', `${url}/api/v1/api-keys`, admin, { name: 'kept operator', role: 'admin' });
    expect(operatorKey.status).toBe(201);
    const token = await enrollmentToken(url, admin, 5);
    agent = await startAgent(url, token, { KERNEX_TELEMETRY_S: '1', KERNEX_RECONNECT_MAX_S: '2' });
    const upload = async (version: string): Promise<string> => {
      const res = await fetch(`${url}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ version, healthCheck: '#!/bin/sh\nexit 0\n' }), headers: { ...admin, 'content-type': 'application/gzip' } });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    };
    const v1 = await upload('1.0.0');
    const first = await api('POST', `${url}/api/v1/deployments`, admin, { bundleId: v1, target: { deviceIds: [agent.deviceId] } });
    expect(first.status).toBe(201);
    await expect.poll(async () => (await api('GET', `${url}/api/v1/deployments/${first.body.id}`, admin)).body.status, { timeout: 30_000 }).toBe('completed');
    const v2 = await upload('2.0.0'); // uploaded before the backup, deployed only after the restore
    await expect.poll(async () => (await api('GET', `${url}/api/v1/devices/${agent!.deviceId}/telemetry`, admin)).body.items.length).toBeGreaterThan(0);

    const list = async (base: string, headers: Record<string, string>, what: string): Promise<any[]> => {
      const res = await api('GET', `${base}/api/v1/${what}`, headers);
      expect(res.status, what).toBe(200);
      return res.body.items;
    };
    const before = {
      devices: await list(url, admin, 'devices'),
      apiKeys: await list(url, admin, 'api-keys'),
      tokens: await list(url, admin, 'enrollment-tokens'),
      bundles: await list(url, admin, 'bundles'),
      deployments: await list(url, admin, 'deployments'),
      executions: await list(url, admin, `deployments/${first.body.id}/executions`),
      audit: await list(url, admin, 'audit'),
      telemetry: await list(url, admin, `devices/${agent.deviceId}/telemetry`),
    };

    // While the server runs, with its own settings: no DATABASE_URL, the same data directory.
    const archive = path.join(dir, 'kernex.backup');
    const backup = await runCli(['backup', '--out', archive], { KERNEX_DATA_DIR: original.KERNEX_DATA_DIR });
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    expect((await fs.stat(archive)).mode & 0o077).toBe(0); // it holds the signing key

    await stopServer();
    const keyBefore = await fs.readFile(path.join(agent.stateDir, 'device.key'), 'utf8');
    const restored = { ...ports, KERNEX_DATA_DIR: path.join(dir, 'restored') };
    const restore = await runCli(['restore', archive], { KERNEX_DATA_DIR: restored.KERNEX_DATA_DIR });
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);

    server = spawnServer(restored); // no KERNEX_ADMIN_KEY: the keys come from the backup
    await server.ready;
    const kept = { authorization: `Bearer ${operatorKey.body.key}` };
    await expect.poll(async () => (await api('GET', `${url}/api/v1/devices/${agent!.deviceId}`, kept)).body.online).toBe(true);

    const ids = (rows: any[]): string[] => rows.map((r) => r.id).sort();
    expect(ids(await list(url, kept, 'devices'))).toEqual(ids(before.devices));
    expect(ids(await list(url, kept, 'api-keys'))).toEqual(ids(before.apiKeys));
    expect(await list(url, kept, 'enrollment-tokens')).toEqual(before.tokens);
    expect(await list(url, kept, 'bundles')).toEqual(before.bundles);
    expect(ids(await list(url, kept, 'deployments'))).toEqual(ids(before.deployments));
    expect(await list(url, kept, `deployments/${first.body.id}/executions`)).toEqual(before.executions);
    const audit = ids(await list(url, kept, 'audit'));
    for (const id of ids(before.audit)) expect(audit).toContain(id);
    const telemetry = (await list(url, kept, `devices/${agent.deviceId}/telemetry`)).map((t) => JSON.stringify(t));
    for (const t of before.telemetry) expect(telemetry).toContain(JSON.stringify(t));

    // The agent kept its identity: the same key (and so the same id, online above), no new registration.
    expect(await fs.readFile(path.join(agent.stateDir, 'device.key'), 'utf8')).toBe(keyBefore);
    const second = await api('POST', `${url}/api/v1/deployments`, kept, { bundleId: v2, target: { deviceIds: [agent.deviceId] } });
    expect(second.status).toBe(201);
    await expect.poll(async () => (await api('GET', `${url}/api/v1/deployments/${second.body.id}`, kept)).body.status, { timeout: 30_000 }).toBe('completed');
    expect(await agent.current('app')).toBe('2.0.0');

    // The signing key came back too: what the restored server signs now verifies with the key the agent learned at registration.
    const res = await fetch(`${url}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ version: '3.0.0', healthCheck: '#!/bin/sh\nexit 0\n' }), headers: { ...kept, 'content-type': 'application/gzip' } });
    expect(res.status).toBe(201);
    const third = await api('POST', `${url}/api/v1/deployments`, kept, { bundleId: ((await res.json()) as { id: string }).id, target: { deviceIds: [agent.deviceId] } });
    await expect.poll(async () => (await api('GET', `${url}/api/v1/deployments/${third.body.id}`, kept)).body.status, { timeout: 30_000 }).toBe('completed');
    expect(await agent.current('app')).toBe('3.0.0');
  });

  it('backs up a stopped server by starting its embedded PostgreSQL, and stops it again', async () => {
    const original = path.join(dir, 'original');
    const res = await runCli(['backup', '--out', path.join(dir, 'stopped.backup')], { KERNEX_DATA_DIR: original });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/backup written: .*stopped\.backup \(\d+ bytes; \d+ tables, \d+ rows, 2 bundle blobs\)/);
    await expect(fs.access(path.join(original, 'pg', 'postmaster.pid'))).rejects.toThrow();
  });

  it('refuses to restore into a data directory that is not empty, in one line', async () => {
    const target = path.join(dir, 'busy');
    await fs.mkdir(target, { recursive: true });
    await fs.writeFile(path.join(target, 'something'), 'x');
    const res = await runCli(['restore', path.join(dir, 'kernex.backup')], { KERNEX_DATA_DIR: target });
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain(target);
    expect(await fs.readdir(target)).toEqual(['something']);
  });
});
