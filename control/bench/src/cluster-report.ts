import os from 'node:os';
import type { ClusterBenchOptions, ClusterBenchResult, Window } from './cluster.bench.js';
import { renderTable, type FigureRow } from './report.js';
import { summarize } from './stats.js';

const one = (v: number) => summarize([v]);
const cores = (cpuS: number, wallS: number): string => (cpuS / wallS).toFixed(2);
const sum = (xs: readonly number[]): number => xs.filter((x) => !Number.isNaN(x)).reduce((a, b) => a + b, 0);

/**
 * Which side bounded a measured window, from the CPU each party used in it
 * (cores = CPU seconds per wall second) and the whole machine's busy time, on
 * a machine of `machineCores`: the machine when its cores were nearly all busy
 * (naming the larger of our two sides, and what other processes took), else
 * one node's single JavaScript thread when it was near one core, else nothing
 * CPU-bound (the time went to waiting: pacing, backoff, timers).
 */
export function limitedBy(w: Window, machineCores: number): string {
  const server = sum(w.nodeCpuS) / w.wallS;
  const client = w.clientCpuS / w.wallS;
  const redis = w.redisCpuS / w.wallS;
  const pg = w.postgresCpuS / w.wallS;
  const ours = server + client + redis + pg;
  const machine = Math.max(ours, w.machineCpuS / w.wallS);
  const others = machine - ours;
  const parts = `nodes ${server.toFixed(2)} (${w.nodeCpuS.filter((x) => !Number.isNaN(x)).map((x) => (x / w.wallS).toFixed(2)).join(' + ')}), swarm ${client.toFixed(2)}, Redis ${redis.toFixed(2)}, PostgreSQL ${pg.toFixed(2)}, other processes ${others.toFixed(2)} cores`;
  const busiestNode = Math.max(...w.nodeCpuS.filter((x) => !Number.isNaN(x)).map((x) => x / w.wallS));
  if (machine >= 0.85 * machineCores) return `the machine: ${machine.toFixed(2)} of ${machineCores} cores busy, of ours the larger share the ${server >= client ? 'server side' : 'client side (swarm)'} (${parts})`;
  if (busiestNode >= 0.85) return `one node's JavaScript thread (${busiestNode.toFixed(2)} cores; ${parts})`;
  return `not CPU: ${machine.toFixed(2)} of ${machineCores} cores busy (${parts})`;
}

const kinds = (w: Window): string => {
  const e = Object.entries(w.busByKind);
  return e.length ? ` (${e.map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ')})` : '';
};

function cpuRow(name: string, w: Window): string {
  return `| ${name} | ${w.wallS.toFixed(1)} | ${w.nodeCpuS.map((x) => (Number.isNaN(x) ? '—' : x.toFixed(1))).join(' + ')} | ${w.clientCpuS.toFixed(1)} | ${w.redisCpuS.toFixed(2)} | ${w.postgresCpuS.toFixed(1)} | ${w.redisCommands.toLocaleString('en-US')} | ${w.busSent.toLocaleString('en-US')}${kinds(w)} |`;
}

/** The BENCHMARKS.md section of `--only cluster`: ratios two nodes / one node from one run, and every party's CPU. */
export function renderClusterSection(r: ClusterBenchResult, opts: ClusterBenchOptions, run: { loadBefore: number[]; minutes: number }): string {
  const machineCores = os.cpus().length;
  const ref = (v: number) => ({ name: 'one node', summary: one(v) });
  const rows: FigureRow[] = [
    {
      figure: `connect storm, ${opts.stormDevices.toLocaleString('en-US')} devices, two nodes`,
      unit: 'devices/s',
      kernex: one(r.two.storm.perS),
      reference: ref(r.one.storm.perS),
      limitedBy: `two nodes: ${limitedBy(r.two.storm, machineCores)}; one node: ${limitedBy(r.one.storm, machineCores)}${r.one.storm.failed + r.two.storm.failed ? `; connects refused or reset: ${r.one.storm.failed} (one node), ${r.two.storm.failed} (two)` : ''}`,
      target: '≥ 1.6× one node',
    },
  ];
  r.two.fanout.forEach((f, i) => {
    const o = r.one.fanout[i]!;
    const capped = o.devices !== f.devices ? ` (one node held ${o.devices.toLocaleString('en-US')}: each device is an open file, and \`ulimit -n\` is ${r.openFilesLimit.toLocaleString('en-US')} here)` : '';
    const lim = `two nodes: ${limitedBy(f, machineCores)}; one node: ${limitedBy(o, machineCores)}${capped}`;
    const oref = (v: number) => ({ name: o.devices !== f.devices ? `one node, ${o.devices.toLocaleString('en-US')} devices` : 'one node', summary: one(v) });
    const n = f.devices.toLocaleString('en-US');
    rows.push(
      { figure: `fan-out p50, ${n} devices, two nodes`, unit: 'ms', kernex: one(f.p50Ms), reference: oref(o.p50Ms), limitedBy: lim },
      { figure: `fan-out p99, ${n} devices, two nodes`, unit: 'ms', kernex: one(f.p99Ms), reference: oref(o.p99Ms), limitedBy: lim, target: '< 1,000 ms at 10,000 (one node)' },
      { figure: `Redis CPU in the fan-out, ${n} devices, two nodes`, unit: 's', kernex: one(f.redisCpuS), reference: oref(o.redisCpuS), limitedBy: `${f.redisCommands.toLocaleString('en-US')} Redis commands, ${f.busSent.toLocaleString('en-US')} bus messages sent by the nodes (one node: ${o.redisCommands.toLocaleString('en-US')}, ${o.busSent.toLocaleString('en-US')})` },
    );
  });
  rows.push({
    figure: 'Redis CPU in the connect storm, two nodes',
    unit: 's',
    kernex: one(r.two.storm.redisCpuS),
    reference: ref(r.one.storm.redisCpuS),
    limitedBy: `${r.two.storm.redisCommands.toLocaleString('en-US')} Redis commands, ${r.two.storm.busSent.toLocaleString('en-US')} bus messages (one node: ${r.one.storm.redisCommands.toLocaleString('en-US')}, ${r.one.storm.busSent.toLocaleString('en-US')})`,
  });
  const fo = r.failover;
  rows.push(
    { figure: `failover of ${fo.devices.toLocaleString('en-US')} devices: SIGKILL to all on the other node (its kernex_devices_connected)`, unit: 'ms', kernex: one(fo.toGaugeMs), limitedBy: `the agent's backoff (two full-jitter draws, < 1 s then < 2 s) and the surviving node: ${limitedBy(fo, machineCores)}` },
    { figure: 'failover: SIGKILL to the last device subscribed again (swarm side)', unit: 'ms', kernex: one(fo.toLastResubscribedMs), limitedBy: `p50 ${Math.round(fo.resubscribedP50Ms)} ms` },
  );
  const n = (x: number): string => x.toLocaleString('en-US');
  return [
    `## Two nodes against one (cluster: one Redis, one PostgreSQL)`,
    '',
    `\`npm run bench -- --only cluster\` (not in the default set: ${run.minutes.toFixed(0)} minutes here). One run; the ratio column is`,
    'two nodes / one node. Debian\'s `redis-server` and PostgreSQL, started by the bench on loopback; `kernex server`',
    'nodes with `DATABASE_URL` + `KERNEX_REDIS_URL` (the one-node figures are a cluster of one, with Redis too); each',
    'scenario on a database of its own, its devices registered beforehand (through every node). The swarm is MQTT.js in',
    `${opts.swarmProcesses} child processes (\`swarm/swarm.ts\`, mode \`processes\`), each device pinned to node \`index % nodes\`.`,
    `**Connect storm**: ${n(opts.stormDevices)} registered P-256 devices CONNECT (ES256 JWT, cold: fresh nodes) and SUBSCRIBE at`,
    'once; rate = N / first CONNECT to last CONNACK. **Fan-out**: the fleet brought up at',
    `${opts.connectRate}/s, one \`POST /api/v1/deployments\` (the devices by id) through node 1; per device the time until its`,
    '`deploy` command arrives; the devices do not answer. **Failover**: two fresh nodes, '
      + `${n(opts.failoverDevices)} devices on node 2 with the URL list [node 2, node 1] and the agent's failover (after losing the`,
    'session: the same URL after a full-jitter backoff of < 1 s, then the next URL after one of < 2 s; base 1 s, cap',
    '60 s, as `agent/src/session/session.ts`); node 2 is SIGKILLed (`control/bench/src/cluster.bench.ts`).',
    `Load average before the run: ${run.loadBefore.map((x) => x.toFixed(2)).join(' ')}; after: ${r.loadAverage.map((x) => x.toFixed(2)).join(' ')}.`,
    '',
    renderTable(rows),
    '',
    'CPU seconds of every party in each measured window (from /proc/&lt;pid&gt;/stat; PostgreSQL is the postmaster and its',
    'backends; the swarm is its child processes plus the bench process), Redis commands processed (INFO stats) and the',
    "nodes' `kernex_cluster_bus_sent_total`:",
    '',
    '| window | wall s | node CPU s | swarm CPU s | Redis CPU s | PostgreSQL CPU s | Redis commands | bus messages sent |',
    '|---|---|---|---|---|---|---|---|',
    cpuRow('storm, one node', r.one.storm),
    cpuRow('storm, two nodes', r.two.storm),
    ...r.one.fanout.flatMap((f, i) => [cpuRow(`fan-out ${n(f.devices)}, one node`, f), cpuRow(`fan-out ${n(r.two.fanout[i]!.devices)}, two nodes`, r.two.fanout[i]!)]),
    cpuRow(`failover ${n(fo.devices)} (node 2 killed as the window opens)`, fo),
    '',
    `Orchestrator leader: ${r.one.leader} (one node), ${r.two.leader} (two nodes).`,
  ].join('\n');
}
