import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { benchBundle, uploadBundle } from './bench-bundle.js';
import { startBenchPostgres, startBenchRedis, type BenchPostgres, type BenchRedis } from './cluster-infra.js';
import { registerDevices, swarmClients, type BenchDevice } from './fleet.bench.js';
import { metricByLabel, metricValue, startKernexServer, type KernexProcess } from './kernex-process.js';
import { machineBusySeconds, openFilesLimit, processCpuSeconds, processTreeCpuSeconds } from './proc-stat.js';
import { percentile } from './stats.js';
import { now } from './swarm/swarm-messages.js';
import { sliceSwarm, urlListFor } from './swarm/split.js';
import { Swarm, type SwarmClientSpec } from './swarm/swarm.js';

/** Options of one cluster benchmark run. */
export interface ClusterBenchOptions {
  /** Fan-out sizes, ascending (e.g. 10,000 and 20,000). */
  fanoutDevices: number[];
  /** Devices in the unpaced connect storm. */
  stormDevices: number;
  /** Devices on the node that is killed. */
  failoverDevices: number;
  /** Child processes the swarm is spread over. */
  swarmProcesses: number;
  /** CONNECTs per second (all nodes) when bringing the fan-out fleets up; not measured. */
  connectRate: number;
}

/** CPU seconds of every party over one measured window, and what crossed Redis. */
export interface Window {
  wallS: number;
  /** Each node's own CPU seconds. */
  nodeCpuS: number[];
  /** The swarm's child processes, summed, plus the bench process (it receives their reports). */
  clientCpuS: number;
  redisCpuS: number;
  /** The postmaster and all its backends. */
  postgresCpuS: number;
  /** Commands Redis processed (INFO stats), and the nodes' kernex_cluster_bus_sent_total. */
  redisCommands: number;
  busSent: number;
  /** Busy CPU seconds of the whole machine (/proc/stat): ours plus other processes'. */
  machineCpuS: number;
  /** The same by kind (packet: broker publishes and takeovers, disconnect, live: the event stream). */
  busByKind: Record<string, number>;
}

export interface StormFigures extends Window {
  devices: number;
  /** Devices refused or reset in the storm (the rate counts the CONNACKs). */
  failed: number;
  perS: number;
}

export interface FanoutFigures extends Window {
  devices: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  postMs: number;
}

export interface NodesFigures {
  nodes: number;
  storm: StormFigures;
  fanout: FanoutFigures[];
  /** The node running the orchestrator (where the deployments were dispatched from). */
  leader: string;
}

export interface FailoverFigures extends Window {
  devices: number;
  /** SIGKILL to the surviving node's kernex_devices_connected reading all of them. */
  toGaugeMs: number;
  /** SIGKILL to the last device subscribed again, as the devices saw it. */
  toLastResubscribedMs: number;
  /** Devices' own reconnect times after the kill, p50. */
  resubscribedP50Ms: number;
}

export interface ClusterBenchResult {
  one: NodesFigures;
  two: NodesFigures;
  failover: FailoverFigures;
  loadAverage: number[];
  /** `ulimit -n` of the nodes. */
  openFilesLimit: number;
}

/** Files a node needs besides its device sockets (database pool, Redis, HTTP, logs, modules). */
const FD_HEADROOM = 1000;

const ADMIN_KEY = `kx_bench_cluster_${randomBytes(12).toString('hex')}`;
const log = (s: string): void => void process.stderr.write(`  cluster: ${s}\n`);

/** Reads CPU and Redis counters of the parties at the start and end of a window. */
async function probe(nodes: readonly KernexProcess[], swarms: readonly Swarm[], redis: BenchRedis, pg: BenchPostgres): Promise<() => Promise<Window>> {
  const nodeCpu = async (): Promise<number[]> => Promise.all(nodes.map((n) => processCpuSeconds(n.pid).catch(() => NaN)));
  const clientCpu = async (): Promise<number> => {
    const pids = swarms.flatMap((s) => s.pids).filter((p) => p !== process.pid);
    const own = process.cpuUsage();
    return (await Promise.all(pids.map((p) => processCpuSeconds(p)))).reduce((a, b) => a + b, 0) + (own.user + own.system) / 1e6;
  };
  const bus = async (): Promise<Record<string, number>> => {
    const total: Record<string, number> = {};
    for (const byKind of await Promise.all(nodes.map((n) => metricByLabel(n.httpUrl, 'kernex_cluster_bus_sent_total', 'kind').catch(() => ({}) as Record<string, number>)))) {
      for (const [k, v] of Object.entries(byKind)) total[k] = (total[k] ?? 0) + v;
    }
    return total;
  };
  const sample = async () => ({
    at: now(),
    nodes: await nodeCpu(),
    client: await clientCpu(),
    redis: await processCpuSeconds(redis.pid),
    pg: await processTreeCpuSeconds(pg.pid),
    commands: await redis.commandsProcessed(),
    bus: await bus(),
    machine: await machineBusySeconds(),
  });
  const a = await sample();
  return async () => {
    const b = await sample();
    // A killed node's CPU is gone with it: its last reading counts as its end.
    return {
      wallS: (b.at - a.at) / 1000,
      nodeCpuS: b.nodes.map((x, i) => (Number.isNaN(x) ? NaN : x - a.nodes[i]!)),
      clientCpuS: b.client - a.client,
      redisCpuS: b.redis - a.redis,
      postgresCpuS: b.pg - a.pg,
      redisCommands: b.commands - a.commands,
      machineCpuS: b.machine - a.machine,
      busSent: Object.keys(b.bus).reduce((t, k) => t + b.bus[k]! - (a.bus[k] ?? 0), 0),
      busByKind: Object.fromEntries(Object.keys(b.bus).map((k) => [k, b.bus[k]! - (a.bus[k] ?? 0)]).filter(([, v]) => v !== 0)),
    };
  };
}

async function startNodes(count: number, databaseUrl: string, redis: BenchRedis, bundleDir: string, tag: string): Promise<KernexProcess[]> {
  const nodes: KernexProcess[] = [];
  // One after another: the first makes the signing key, the others load it.
  for (let i = 0; i < count; i++) {
    nodes.push(await startKernexServer({ DATABASE_URL: databaseUrl, KERNEX_REDIS_URL: redis.url, KERNEX_NODE_ID: `${tag}-${i + 1}`, KERNEX_BUNDLE_DIR: bundleDir, KERNEX_ADMIN_KEY: ADMIN_KEY }));
  }
  return nodes;
}

const mqttUrl = (n: KernexProcess): string => `mqtt://127.0.0.1:${n.mqttPort}`;

/** Polls a condition every 50 ms; throws after `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`cluster bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function connectedOn(nodes: readonly KernexProcess[]): Promise<number> {
  return (await Promise.all(nodes.map((n) => metricValue(n.httpUrl, 'kernex_devices_connected')))).reduce((a, b) => a + b, 0);
}

async function connectSwarm(clients: SwarmClientSpec[], processes: number, connectRate: number): Promise<Swarm> {
  const swarm = Swarm.start({ url: clients[0]!.url!, clients, workers: processes, mode: 'processes', clean: false, connectRate });
  try {
    await swarm.waitFor((s) => s.subscribed + s.failures.length >= clients.length, 600_000, 'subscriptions');
  } catch (err) {
    await swarm.close();
    throw err;
  }
  if (swarm.failures.length) {
    await swarm.close();
    throw new Error(`${swarm.failures.length} devices failed: ${swarm.failures[0]!.reason}`);
  }
  return swarm;
}

/** Each device pinned to node `index % nodes`; `retrying`: a one-URL list, so a refused or reset connect is retried with the agent's backoff. */
const spread = (devices: readonly BenchDevice[], nodes: readonly KernexProcess[], offset = 0, retrying = false): SwarmClientSpec[] =>
  swarmClients(devices).map((c, i) => {
    const url = mqttUrl(nodes[(offset + i) % nodes.length]!);
    return retrying ? { ...c, url, urls: [url] } : { ...c, url };
  });

/**
 * `count` nodes on their own database: register the largest fleet, an unpaced
 * connect storm (cold: fresh nodes, every JWT verified), then fan-outs at each
 * size with the fleet spread evenly over the nodes and the deployment created
 * through node 1.
 */
async function nodesRun(count: number, opts: ClusterBenchOptions, redis: BenchRedis, pg: BenchPostgres, bundleDir: string): Promise<NodesFigures> {
  const databaseUrl = await pg.createDatabase(`kx_bench_nodes${count}_${randomBytes(3).toString('hex')}`);
  const nodes = await startNodes(count, databaseUrl, redis, bundleDir, `bench${count}`);
  // A node holds a socket per device: one node takes at most what `ulimit -n` allows, less room for its own files.
  const cap = (await openFilesLimit()) - FD_HEADROOM;
  const sizes = opts.fanoutDevices.map((n) => Math.min(n, Math.floor(cap * count)));
  const swarms: Swarm[] = [];
  /** The index of each swarm's first device in `devices`. */
  const offsets: number[] = [];
  try {
    const max = Math.max(opts.stormDevices, ...sizes);
    const t0 = now();
    // Registered through every node at once (a registration is one node's CPU).
    const shares = sliceSwarm(max, nodes.length);
    const devices = (await Promise.all(shares.map((sh, i) => registerDevices(nodes[i]!, sh.count)))).flat();
    log(`${count} node(s): registered ${max} devices in ${((now() - t0) / 1000).toFixed(1)} s`);

    // Connect storm: every device CONNECTs at once, as fast as the swarm can send.
    const stormClients = spread(devices.slice(0, opts.stormDevices), nodes);
    const stormSwarm = Swarm.start({ url: stormClients[0]!.url!, clients: stormClients, workers: opts.swarmProcesses, mode: 'processes', clean: false, hold: true });
    await stormSwarm.ready;
    const stormEnd = await probe(nodes, [stormSwarm], redis, pg);
    stormSwarm.go();
    let storm: StormFigures;
    try {
      await stormSwarm.waitFor((s) => s.subscribed + s.failures.length >= stormClients.length, 600_000, 'storm subscriptions');
      const window = await stormEnd();
      const failed = new Set(stormSwarm.failures.map((f) => f.index)).size;
      if (failed) log(`${count} node(s): ${failed} devices failed in the storm, first: ${stormSwarm.failures[0]!.reason}`);
      const first = Math.min(...stormSwarm.connectTimes.map((c) => c.sentAt));
      const last = Math.max(...stormSwarm.connectTimes.map((c) => c.ackAt));
      storm = { ...window, devices: opts.stormDevices, failed, perS: stormSwarm.connectTimes.length / ((last - first) / 1000) };
      log(`${count} node(s): storm ${JSON.stringify(storm)}`);
    } finally {
      await stormSwarm.close();
    }
    await until(async () => (await connectedOn(nodes)) === 0, 120_000, 'the storm devices to disconnect');

    const fanout: FanoutFigures[] = [];
    let up = 0;
    for (const [k, n] of sizes.entries()) {
      // Bring devices [up, n) up, paced, spread over the nodes; earlier ones stay connected.
      if (n > up) {
        swarms.push(await connectSwarm(spread(devices.slice(up, n), nodes, up, true), opts.swarmProcesses, opts.connectRate));
        offsets.push(up);
        up = n;
      }
      await until(async () => (await connectedOn(nodes)) === n, 120_000, `${n} devices connected`);
      const bundle = await uploadBundle(nodes[0]!, await benchBundle(`1.${count}.${k}`, 0));
      const tag = `deploy:${bundle.id}`;
      const firstArrival = new Map<number, number>();
      const listeners = swarms.map((s, si) => {
        const base = offsets[si]!;
        const fn = (r: { clientIndex: number; at: number; tag?: string }): void => {
          if (r.tag === tag && !firstArrival.has(base + r.clientIndex)) firstArrival.set(base + r.clientIndex, r.at);
        };
        s.on('receipt', fn);
        return () => s.off('receipt', fn);
      });
      const end = await probe(nodes, swarms, redis, pg);
      const start = now();
      const res = await fetch(`${nodes[0]!.httpUrl}/api/v1/deployments`, {
        method: 'POST',
        headers: nodes[0]!.adminHeaders,
        body: JSON.stringify({ bundleId: bundle.id, target: { deviceIds: devices.slice(0, n).map((d) => d.id) } }),
      });
      const postMs = now() - start;
      if (res.status !== 201) throw new Error(`deployment: ${res.status} ${await res.text()}`);
      await until(async () => firstArrival.size >= n, 600_000, `deploy commands on ${n} devices`);
      const window = await end();
      for (const off of listeners) off();
      const latencies = [...firstArrival.values()].map((at) => at - start);
      const f: FanoutFigures = { ...window, devices: n, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: Math.max(...latencies), postMs };
      log(`${count} node(s): fan-out ${JSON.stringify(f)}`);
      fanout.push(f);
    }
    const nodeList = (await (await fetch(`${nodes[0]!.httpUrl}/api/v1/nodes`, { headers: nodes[0]!.adminHeaders })).json()) as { items: Array<{ id: string; leader: boolean }> };
    return { nodes: count, storm, fanout, leader: nodeList.items.find((x) => x.leader)?.id ?? 'none' };
  } finally {
    for (const s of swarms) await s.close();
    for (const n of nodes) await n.stop();
  }
}

/**
 * Two nodes on their own database; `devices` devices connected to node 2, each
 * given the list [node 2, node 1] and the agent's failover (swarm-worker.ts);
 * node 2 is SIGKILLed, and the clock runs until node 1 holds them all.
 */
async function failoverRun(opts: ClusterBenchOptions, redis: BenchRedis, pg: BenchPostgres, bundleDir: string): Promise<FailoverFigures> {
  const databaseUrl = await pg.createDatabase(`kx_bench_failover_${randomBytes(3).toString('hex')}`);
  const nodes = await startNodes(2, databaseUrl, redis, bundleDir, 'failover');
  const [survivor, victim] = nodes as [KernexProcess, KernexProcess];
  let swarm: Swarm | undefined;
  try {
    const devices = await registerDevices(survivor, opts.failoverDevices);
    const urls = [mqttUrl(victim), mqttUrl(survivor)];
    // urlListFor(0, …) for every device: all start on node 2 and fail over to node 1.
    const clients = swarmClients(devices).map((c) => ({ ...c, urls: urlListFor(0, urls) }));
    swarm = Swarm.start({ url: urls[0]!, clients, workers: opts.swarmProcesses, mode: 'processes', clean: false, connectRate: opts.connectRate });
    await swarm.waitFor((s) => s.subscribed >= clients.length, 600_000, 'failover devices on node 2');
    await until(async () => (await metricValue(victim.httpUrl, 'kernex_devices_connected')) === opts.failoverDevices, 120_000, 'node 2 holding every device');
    const end = await probe(nodes, [swarm], redis, pg);
    const killedAt = now();
    await victim.kill();
    await until(async () => (await metricValue(survivor.httpUrl, 'kernex_devices_connected')) === opts.failoverDevices, 300_000, 'node 1 holding every device');
    const toGaugeMs = now() - killedAt;
    await swarm.waitFor((s) => new Set(s.reconnectTimes.map((r) => r.index)).size >= clients.length, 300_000, 'every device subscribed again');
    const window = await end();
    const firstBack = new Map<number, number>();
    for (const r of swarm.reconnectTimes) if (!firstBack.has(r.index)) firstBack.set(r.index, r.at - killedAt);
    const back = [...firstBack.values()];
    const f: FailoverFigures = { ...window, devices: opts.failoverDevices, toGaugeMs, toLastResubscribedMs: Math.max(...back), resubscribedP50Ms: percentile(back, 50) };
    log(`failover: ${JSON.stringify(f)}`);
    return f;
  } finally {
    await swarm?.close();
    for (const n of nodes) await n.stop();
  }
}

/** The whole cluster benchmark: one Redis and one Debian PostgreSQL for every scenario, each scenario on its own database. */
export async function clusterRun(opts: ClusterBenchOptions): Promise<ClusterBenchResult> {
  const bundleDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-bench-cluster-bundles-'));
  const [redis, pg] = await Promise.all([startBenchRedis(), startBenchPostgres()]);
  try {
    const one = await nodesRun(1, opts, redis, pg, bundleDir);
    const two = await nodesRun(2, opts, redis, pg, bundleDir);
    const failover = await failoverRun(opts, redis, pg, bundleDir);
    return { one, two, failover, loadAverage: os.loadavg(), openFilesLimit: await openFilesLimit() };
  } finally {
    await redis.stop();
    await pg.stop();
    await fs.rm(bundleDir, { recursive: true, force: true });
  }
}
