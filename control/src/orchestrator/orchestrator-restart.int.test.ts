import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { metric } from '../test-support/mqtt.js';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';
import { freePort } from '../net/free-port.js';

/**
 * A loopback proxy for the blob URLs devices are told (KERNEX_PUBLIC_URL): requests pass,
 * but answers pass only up to `budget` bytes per connection; `reached` resolves when one
 * connection has carried its budget. `open()` lets everything through again.
 */
async function gate(targetPort: number): Promise<{ port: number; hold(bytes: number): Promise<void>; open(): void; close(): Promise<void> }> {
  let budget = Infinity;
  let reached: () => void = () => {};
  const flush = new Set<() => void>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let carried = 0;
    const held: Buffer[] = [];
    const release = (): void => {
      for (const d of held.splice(0)) client.write(d);
      upstream.resume();
    };
    flush.add(release);
    client.on('error', () => upstream.destroy()).on('close', () => (upstream.destroy(), flush.delete(release)));
    upstream.on('error', () => client.destroy()).on('close', () => client.destroy());
    client.on('data', (d: Buffer) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      if (held.length || carried + d.length > budget) {
        const room = Math.max(0, budget - carried);
        if (room) client.write(d.subarray(0, room));
        carried += room;
        held.push(d.subarray(room));
        upstream.pause();
        reached();
        return;
      }
      carried += d.length;
      client.write(d);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    hold(bytes) {
      budget = bytes;
      return new Promise((resolve) => (reached = resolve));
    },
    open() {
      budget = Infinity;
      reached = () => {};
      for (const f of flush) f();
    },
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

type Moment = 'between commit and publish' | 'right after PUBACK' | 'mid-download';

/**
 * SIGKILL of the server at the moments where state is most in flight, repeated: the
 * deployment still ends once per device and every install runs exactly once. Real
 * `kernex server` processes on one database, real agents; each install appends its
 * version to a file, so an install run twice shows.
 */
describe('orchestrator survives its own death at the worst moments', () => {
  let database: TestDatabase;
  let dataDir: string;
  let env: Record<string, string>;
  let url: string;
  let headers: Record<string, string>;
  let server: ServerProcess | undefined;
  let blobs: Awaited<ReturnType<typeof gate>>;
  const agents: FleetAgent[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-restart-'));
    const adminKey = `kx_test_${randomBytes(16).toString('hex')}`;
    const httpPort = await freePort();
    blobs = await gate(httpPort);
    env = {
      DATABASE_URL: database.url,
      KERNEX_DATA_DIR: dataDir,
      KERNEX_ADMIN_KEY: adminKey,
      KERNEX_HTTP_PORT: String(httpPort),
      KERNEX_MQTT_PORT: String(await freePort()),
      // Devices fetch blobs through the gate; the API and MQTT go direct.
      KERNEX_PUBLIC_URL: `http://127.0.0.1:${blobs.port}`,
      KERNEX_ORCHESTRATOR_TICK_MS: '200',
      // The test polls the API while it waits; the default per-key limit would answer 429.
      KERNEX_RATE_LIMIT_PER_MIN: '1000000',
    };
    headers = { authorization: `Bearer ${adminKey}` };
    url = `http://127.0.0.1:${httpPort}`;
    server = spawnServer(env);
    await server.ready;
    const token = await enrollmentToken(url, headers, 2);
    const agentEnv = { KERNEX_RECONNECT_MAX_S: '1' };
    agents.push(...(await Promise.all([startAgent(url, token, agentEnv), startAgent(url, token, agentEnv)])));
  });

  afterAll(async () => {
    blobs?.open();
    await Promise.all(agents.map((a) => a.stop().catch(() => {})));
    if (server && server.proc.exitCode === null && server.proc.signalCode === null) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
    await blobs?.close();
    await database?.drop();
    for (const a of agents) await fs.rm(a.stateDir, { recursive: true, force: true });
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  const show = async (id: string): Promise<any> => (await api('GET', `${url}/api/v1/deployments/${id}`, headers)).body;
  const executions = async (id: string): Promise<Array<{ deviceId: string; state: string }>> =>
    (await api('GET', `${url}/api/v1/deployments/${id}/executions`, headers)).body.items;
  /** Bundle versions of the executions the agent has recorded in its state directory. */
  const recordedVersions = async (a: FleetAgent): Promise<string[]> => {
    const text = await fs.readFile(path.join(a.stateDir, 'bundles', 'state.json'), 'utf8').catch(() => '{}');
    return Object.values((JSON.parse(text) as { executions?: Record<string, { version?: string }> }).executions ?? {}).map((r) => r.version ?? '');
  };
  const installs = async (a: FleetAgent): Promise<string[]> =>
    (await fs.readFile(path.join(a.stateDir, 'bundles', 'app', '.runs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);

  async function killAndRestart(): Promise<void> {
    server!.proc.kill('SIGKILL');
    expect((await server!.exited).signal).toBe('SIGKILL');
    server = spawnServer(env);
    await server.ready;
  }

  const moments: Moment[] = ['between commit and publish', 'right after PUBACK', 'mid-download'];
  const rounds = [...moments, ...moments].map((moment, i) => ({ moment, version: `1.0.${i}` }));

  it.each(rounds)('finishes a phased deployment after SIGKILL $moment ($version), each install run once', async ({ moment, version }) => {
    const archive = await makeBundle({ version, install: '#!/bin/sh\necho "$KERNEX_BUNDLE_VERSION" >> ../.runs\n', padding: 1024 * 1024 });
    const up = await fetch(`${url}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...headers, 'content-type': 'application/gzip' } });
    expect(up.status).toBe(201);
    const bundleId = ((await up.json()) as { id: string }).id;
    const before = await metric(url, 'kernex_executions', { state: 'succeeded' });

    // The broker of a killed server forgets what it held; with the devices offline the
    // committed command exists only in PostgreSQL when the server dies.
    if (moment === 'between commit and publish') await Promise.all(agents.map((a) => a.stop()));
    const reached =
      moment === 'right after PUBACK' ? blobs.hold(0) : moment === 'mid-download' ? blobs.hold(512 * 1024) : undefined;

    const created = await api('POST', `${url}/api/v1/deployments`, headers, {
      bundleId,
      target: { deviceIds: agents.map((a) => a.deviceId) },
      rollout: { phases: [{ percent: 50, waitS: 0 }, { percent: 100, waitS: 0 }] },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    if (moment === 'between commit and publish') {
      await expect.poll(async () => (await executions(id)).some((e) => e.state === 'sent'), { timeout: 30_000 }).toBe(true);
    } else if (moment === 'right after PUBACK') {
      // The agent records the command in its state directory, then acknowledges it (PUBACK
      // follows its handler): kill as soon as the record is there, before or just as the
      // server hears `received`; the gate holds the blob, so the download cannot get ahead.
      await expect.poll(async () => (await Promise.all(agents.map(recordedVersions))).some((v) => v.includes(version)), { timeout: 30_000 }).toBe(true);
    } else {
      await reached;
    }
    await killAndRestart();
    blobs.open();
    if (moment === 'between commit and publish') await Promise.all(agents.map((a) => a.restart()));

    await expect.poll(async () => (await show(id)).status, { timeout: 60_000 }).toBe('completed');
    expect((await show(id)).counts).toMatchObject({ succeeded: 2, failed: 0, timed_out: 0 });
    expect((await executions(id)).map((e) => e.state)).toEqual(['succeeded', 'succeeded']);
    // Ended once each: the executions counted as succeeded grew by exactly the two of this deployment.
    expect(await metric(url, 'kernex_executions', { state: 'succeeded' })).toBe(before + 2);
    for (const a of agents) {
      expect(await a.current('app')).toBe(version);
      expect((await installs(a)).filter((v) => v === version)).toEqual([version]);
    }
  });
});
