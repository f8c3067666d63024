import fs from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminHeaders, startCluster, stopCluster, type ClusterNodeProcess } from '../test-support/cluster.js';
import { startDebianPostgres, type DebianPostgres } from '../test-support/debian-postgres.js';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { startHoldingProxy, type HoldingProxy } from '../test-support/holding-proxy.js';
import { closed, connectDevice, metric } from '../test-support/mqtt.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { LEASE_MS } from './cluster-node.js';

/** Debian's libfaketime (package `libfaketime`, pulled in by `faketime`): shifts a process's wall clock only. */
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const BEHIND_S = 60;
const AHEAD_S = 3600;

/**
 * The environment that runs one node with its wall clock `seconds` off (libfaketime
 * through LD_PRELOAD). Only the wall clock: the monotonic clock, which Node's timers
 * use, is left alone, so the node renews on time. A fixed offset needs no
 * libfaketimeMT: that variant only serialises `time()`, which Node's Date does not call.
 */
const clockOff = (seconds: number): Record<string, string> => ({
  LD_PRELOAD: LIBFAKETIME,
  FAKETIME: `${seconds >= 0 ? '+' : ''}${seconds}`,
  FAKETIME_DONT_FAKE_MONOTONIC: '1',
});

/**
 * A node whose clock is off (DESIGN §8), with real processes: three `kernex server`
 * nodes on Debian's PostgreSQL and a redis-server, node 2 running 60 s behind and
 * node 3 an hour ahead, and MQTT.js devices. Leases are judged, and presence is
 * written, on the database's clock. Node 3 reaches PostgreSQL through a proxy that
 * can hold back its write of one device.
 */
describe('a cluster node whose clock is off', () => {
  let pg: DebianPostgres;
  let redis: TestRedis;
  let proxy: HoldingProxy;
  let nodes: ClusterNodeProcess[] = [];
  const clients: MqttClient[] = [];
  let token: string;

  /** PostgreSQL's clock now, in ms. */
  const databaseNow = (): Promise<number> => pg.admin('kernex', async (sql) => (await sql<{ now: Date }[]>`select now()`)[0]!.now.getTime());
  /** A node's own clock (the `Date` header of its answer; whole seconds), in ms. */
  const nodeClock = async (n: ClusterNodeProcess): Promise<number> => Date.parse((await fetch(`${n.httpUrl}/healthz`)).headers.get('date')!);
  const device = async (id: string): Promise<{ online: boolean; lastSeenAt: string | null }> =>
    (await api('GET', `${nodes[0]!.httpUrl}/api/v1/devices/${id}`, adminHeaders)).body;
  const leases = async (): Promise<Map<string, string>> =>
    new Map(((await api('GET', `${nodes[0]!.httpUrl}/api/v1/nodes`, adminHeaders)).body.items as Array<{ id: string; leaseExpiresAt: string }>).map((n) => [n.id, n.leaseExpiresAt]));
  /**
   * Resolves once each node in `counts` has renewed its lease that many times (seen through
   * node 1's `GET /api/v1/nodes`). A node sweeps after each renewal and runs one round at a
   * time, so two renewals of a node seen after some moment mean one full sweep of it since.
   */
  async function renewals(counts: Record<string, number>): Promise<void> {
    const seen = new Map(Object.keys(counts).map((id) => [id, new Set<string>()]));
    const first = await leases();
    await expect
      .poll(
        async () => {
          const now = await leases();
          return Object.entries(counts).every(([id, n]) => {
            if (now.get(id) !== first.get(id)) seen.get(id)!.add(now.get(id)!);
            return seen.get(id)!.size >= n;
          });
        },
        { timeout: 60_000 },
      )
      .toBe(true);
  }
  /** A device registered through node 1 whose MQTT password is a JWT signed by a clock `offsetS` off (it set its clock from that node). */
  async function deviceWithClock(offsetS: number): Promise<{ d: TestDevice; password: string }> {
    const d = await makeDevice();
    expect((await register(nodes[0]!.httpUrl, d, { enrollmentToken: token })).status).toBe(201);
    return { d, password: await d.jwt('kernex-mqtt', { now: Math.floor(Date.now() / 1000) + offsetS }) };
  }

  beforeAll(async () => {
    // Refuse, never skip: without libfaketime this test would prove nothing.
    await fs.access(LIBFAKETIME).catch(() => {
      throw new Error(`${LIBFAKETIME} is missing: install Debian's libfaketime (apt-get install faketime) to run the clock-skew test`);
    });
    [pg, redis] = await Promise.all([startDebianPostgres(), startRedis()]);
    await pg.admin('postgres', (sql) => sql.unsafe('create database kernex'));
    proxy = await startHoldingProxy(pg.port);
    nodes = await startCluster({
      count: 3,
      databaseUrl: pg.url('kernex'),
      redisUrl: redis.url,
      nodeEnv: [undefined, clockOff(-BEHIND_S), { ...clockOff(AHEAD_S), DATABASE_URL: pg.url('kernex').replace(`:${pg.port}/`, `:${proxy.port}/`) }],
    });
    token = await enrollmentToken(nodes[0]!.httpUrl, adminHeaders, 10);
  });
  afterAll(async () => {
    proxy?.release();
    for (const c of clients) c.end(true);
    await stopCluster(nodes);
    await proxy?.close();
    await redis?.stop();
    await pg?.stop();
  });

  it('keeps a node 60 s behind alive, and its device online on the other nodes, because its lease is judged by the database’s clock', async () => {
    const [one, behind] = nodes as [ClusterNodeProcess, ClusterNodeProcess];
    const { d, password } = await deviceWithClock(-BEHIND_S);
    clients.push(await connectDevice(behind.mqttUrl, d, { password }));
    await expect.poll(async () => (await device(d.id)).online).toBe(true);

    // By its own clock, a lease of this node would have ended already: its clock plus a lease is before the database's now.
    expect((await nodeClock(behind)) + LEASE_MS).toBeLessThan(await databaseNow());

    // It renews a few times, and node 1 sweeps at least once after the device came online.
    await renewals({ [behind.id]: 3, [one.id]: 2 });
    const now = await databaseNow();
    expect(Date.parse((await leases()).get(behind.id)!)).toBeGreaterThan(now);
    expect(await device(d.id)).toMatchObject({ online: true });
    expect(Date.parse((await device(d.id)).lastSeenAt!)).toBeLessThanOrEqual(now);
    expect(await metric(one.httpUrl, 'kernex_cluster_devices_swept_total')).toBe(0);
    expect(await metric(behind.httpUrl, 'kernex_devices_connected')).toBe(1);
  });

  it('has a node an hour ahead register, tell the time to, and authenticate a device with a right clock, judging by the database’s clock', async () => {
    const ahead = nodes[2]!;
    // The node's own clock is an hour ahead of the database's.
    expect((await nodeClock(ahead)) - (await databaseNow())).toBeGreaterThan((AHEAD_S - 60) * 1000);
    const d = await makeDevice();
    // Its proof is signed now by the right clock: an hour old by the node's own.
    const res = await register(ahead.httpUrl, d, { enrollmentToken: token });
    expect(res.status).toBe(201);
    // The device sets its clock from this: the database's time, not the node's.
    expect(Math.abs(Date.parse(res.body.serverTime as string) - (await databaseNow()))).toBeLessThan(60_000);
    // A ten-minute token signed now: long expired by the node's own clock.
    const client = await connectDevice(ahead.mqttUrl, d, { password: await d.jwt('kernex-mqtt', { ttlS: 600 }) });
    clients.push(client);
    await expect.poll(async () => (await device(d.id)).online).toBe(true);
    await client.endAsync(); // the next test counts node 3's connections
    await expect.poll(() => metric(ahead.httpUrl, 'kernex_devices_connected')).toBe(0);
  });

  it('ends a takeover from a node an hour ahead online on the correct-clock node, its connect being later on the database’s clock', async () => {
    const [one, , ahead] = nodes as [ClusterNodeProcess, ClusterNodeProcess, ClusterNodeProcess];
    // A device with a right clock: node 3 tells registering devices the database's time (the test above).
    const { d, password } = await deviceWithClock(0);
    const first = await connectDevice(ahead.mqttUrl, d, { password });
    clients.push(first);
    await expect.poll(async () => (await device(d.id)).online).toBe(true);
    // Node 3 stamped the connect on the database's clock, not an hour ahead on its own.
    const stamped = Date.parse((await device(d.id)).lastSeenAt!);
    expect(stamped).toBeLessThanOrEqual(await databaseNow());

    // The device connects to node 1. Node 3 hears the takeover and closes the old socket; its write of that
    // close is held on its way to the database until node 1's connect has been written.
    const aheadClock = await nodeClock(ahead);
    const held = proxy.hold(d.id);
    const firstClosed = closed(first);
    clients.push(await connectDevice(one.mqttUrl, d));
    await firstClosed;
    await held;
    // Node 1's connect replaced node 3's session: it is later, on the database's clock.
    await expect.poll(async () => Date.parse((await device(d.id)).lastSeenAt!)).toBeGreaterThan(stamped);
    expect(await device(d.id)).toMatchObject({ online: true });
    // Node 3's own clock is later than that connect: a stamp by it would have outranked node 1's.
    expect(aheadClock).toBeGreaterThan(await databaseNow());

    // Node 3's close reaches the database: the session is node 1's now, so it changes nothing.
    proxy.release();
    await expect.poll(() => metric(ahead.httpUrl, 'kernex_writer_backlog', { writer: 'presence' })).toBe(0);
    expect(await device(d.id)).toMatchObject({ online: true });
    expect(await metric(ahead.httpUrl, 'kernex_devices_connected')).toBe(0);
    expect(await metric(one.httpUrl, 'kernex_devices_connected')).toBe(1);

    // The record names node 1: node 3 stops, its lease ends, node 1 sweeps, and the device stays online.
    await ahead.stop();
    await renewals({ [one.id]: 2 });
    expect(await device(d.id)).toMatchObject({ online: true });
  });
});
