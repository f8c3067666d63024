import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { brokerLevelRun, type BrokerRun } from './broker-level.bench.js';
import { connectStormRun, makeDevices, verifyRate, type ConnectStormRun } from './connect-storm.bench.js';
import { machineFacts } from './machine.js';
import { renderTable, writeSection, type FigureRow } from './report.js';
import { summarize, type Summary } from './stats.js';
import { startKernexBroker, startMosquittoTarget, type BrokerTarget } from './targets.js';

/**
 * `npm run bench`: reproducible loopback benchmarks, bounded in count and
 * time, that rewrite their sections of BENCHMARKS.md. Every figure is the
 * median of --runs runs with min–max; references are measured in the same run.
 */
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    devices: { type: 'string', default: '2000' },
    'auth-devices': { type: 'string', default: '1000' },
    workers: { type: 'string', default: '2' },
    only: { type: 'string' },
    'server-devices': { type: 'string', default: '2000' },
    'sim-devices': { type: 'string', default: '2000' },
    'connect-rate': { type: 'string', default: '500' },
    'fanout-devices': { type: 'string', default: '1000' },
    downloads: { type: 'string', default: '100' },
    'bundle-mib': { type: 'string', default: '8' },
    'console-devices': { type: 'string', default: '2000' },
    'delta-packages': { type: 'string', default: '128' },
    'cluster-devices': { type: 'string', default: '10000,20000' },
    'cluster-storm-devices': { type: 'string', default: '4000' },
    'cluster-failover-devices': { type: 'string', default: '1000' },
    'swarm-processes': { type: 'string', default: '4' },
    'cluster-connect-rate': { type: 'string', default: '400' },
    out: { type: 'string' },
  },
});
const runs = Number(values.runs);
const devices = Number(values.devices);
const workers = Number(values.workers);
const out = values.out ?? path.resolve(fileURLToPath(new URL('../../../', import.meta.url)), 'BENCHMARKS.md');
const selected = (name: string): boolean => !values.only || values.only.split(',').includes(name);
/** Long benchmarks run only when named in --only. */
const named = (name: string): boolean => !!values.only && values.only.split(',').includes(name);

async function repeat(start: () => Promise<BrokerTarget>): Promise<BrokerRun[]> {
  const results: BrokerRun[] = [];
  for (let r = 0; r < runs; r++) {
    const target = await start();
    try {
      results.push(await brokerLevelRun(target, devices, workers));
      process.stderr.write(`  ${target.name} run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
    } finally {
      await target.stop();
    }
  }
  return results;
}

const facts = machineFacts();
await writeSection(out, 'machine', ['## Machine', '', ...Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`), `- date: ${new Date().toISOString().slice(0, 10)}`].join('\n'));

if (selected('broker')) {
  process.stderr.write(`broker-level rows: ${devices} devices, ${workers} client worker threads, ${runs} runs each\n`);
  const kernex = await repeat(startKernexBroker);
  const mosquitto = await repeat(startMosquittoTarget);
  const row = (figure: string, unit: string, pick: (r: BrokerRun) => number, limitedBy: string, target?: string): FigureRow => ({
    figure,
    unit,
    kernex: summarize(kernex.map(pick)),
    reference: { name: 'Mosquitto', summary: summarize(mosquitto.map(pick)) },
    limitedBy,
    target,
  });
  await writeSection(
    out,
    'broker-level',
    [
      `## Broker level, authentication off on both sides (${devices} devices)`,
      '',
      'Each broker runs in its own process on loopback; the clients are MQTT.js in',
      `${workers} worker threads of one process (\`control/bench/src/broker-level.bench.ts\`).`,
      '',
      renderTable([
        row('connect storm', 'connects/s', (r) => r.connectsPerS, 'the broker process (one core, JS CONNECT handling); clients use the other core'),
        row('fan-out p50', 'ms', (r) => r.fanoutP50Ms, 'publisher + broker'),
        row('fan-out p99', 'ms', (r) => r.fanoutP99Ms, 'publisher + broker', '< 1,000 ms'),
        row('memory per connection, RSS after a full GC', 'bytes', (r) => r.bytesPerConnection, 'the broker process: live heap (row below) plus V8 heap pages and native memory around it; Mosquitto as it is', '< 20 KB'),
        {
          figure: 'memory per connection, RSS at once after the storm',
          unit: 'bytes',
          kernex: summarize(kernex.map((r) => r.bytesPerConnectionAtOnce)),
          reference: { name: 'Mosquitto', summary: summarize(mosquitto.map((r) => r.bytesPerConnectionAtOnce)) },
          limitedBy: "as above plus the storm's garbage not yet collected (how this row was measured before 2026-12-01)",
        },
        {
          figure: 'live JavaScript heap per connection',
          unit: 'bytes',
          kernex: summarize(kernex.map((r) => r.heapPerConnection)),
          limitedBy: 'Aedes client and parser, net.Socket, subscription tries (heap snapshots: BENCHMARKS.md notes on memory)',
        },
      ]),
      '',
      'Memory: growth per connection from a baseline taken after 20 clients came and went, read after a',
      'full garbage collection in the Kernex broker (`memory-probe.ts`, preloaded); Mosquitto frees as it goes.',
    ].join('\n'),
  );
}
if (selected('telemetry')) {
  const { telemetryRun } = await import('./telemetry.bench.js');
  const runsOf: Array<Awaited<ReturnType<typeof telemetryRun>>> = [];
  for (let r = 0; r < runs; r++) {
    runsOf.push(await telemetryRun(100, 500));
    process.stderr.write(`  telemetry run ${r + 1}/${runs}: ${JSON.stringify(runsOf.at(-1))}\n`);
  }
  await writeSection(
    out,
    'telemetry-ingest',
    [
      '## Telemetry ingest (one server, 100 devices)',
      '',
      'A `kernex server` process (embedded PostgreSQL) and 100 authenticated MQTT.js devices in the',
      'bench process; each device publishes 500 typical agent samples (QoS 0, ~130-byte JSON) as fast',
      'as it can (50,000 in all); the figure is `kernex_telemetry_persisted_total` over the time from',
      'the first publish to the last write (`control/bench/src/telemetry.bench.ts`). Batches of up to',
      '2,000 rows: one INSERT over unnest()ed arrays plus one UPDATE of the latest values per flush.',
      '',
      renderTable([
        {
          figure: 'telemetry persisted',
          unit: 'messages/s',
          kernex: summarize(runsOf.map((r) => r.persistedPerS)),
          limitedBy: 'two cores shared by the publishers, the server process (MQTT parsing, JSON parse + schema check per message) and PostgreSQL; not profiled further',
        },
        {
          figure: 'lost between publish and database',
          unit: 'messages',
          kernex: summarize(runsOf.map((r) => r.sent - r.persisted)),
          limitedBy: 'QoS 0 (DESIGN §3): the broker may drop under overload; should be 0 here',
        },
      ]),
    ].join('\n'),
  );
}

/** Kernex figures the push-versus-polling table compares, when measured in this run. */
let idleMqttBytes: number | undefined;
let fanoutForPolling: { devices: number; p50: Summary; p99: Summary } | undefined;

if (selected('fanout')) {
  const { fanoutRun } = await import('./fanout.bench.js');
  const rows: FigureRow[] = [];
  for (const n of values['fanout-devices']!.split(',').map(Number)) {
    const results = [];
    for (let r = 0; r < runs; r++) {
      results.push(await fanoutRun(n, workers));
      process.stderr.write(`  fan-out ${n} run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
    }
    const p50 = summarize(results.map((r) => r.p50Ms));
    const p99 = summarize(results.map((r) => r.p99Ms));
    fanoutForPolling ??= { devices: n, p50, p99 };
    const last = results.at(-1)!;
    const limit = `server ${last.serverCpuShare.toFixed(2)} cores, receiving clients ${last.clientCpuShare.toFixed(2)}, from POST to last arrival (last run); PostgreSQL and the clients share the other core: see the notes`;
    rows.push(
      { figure: `fan-out p50, ${n} devices`, unit: 'ms', kernex: p50, limitedBy: limit },
      { figure: `fan-out p99, ${n} devices`, unit: 'ms', kernex: p99, limitedBy: limit, target: '< 1,000 ms at 10,000' },
      { figure: `POST /deployments answer, ${n} devices`, unit: 'ms', kernex: summarize(results.map((r) => r.postMs)), limitedBy: 'creating one execution row per device' },
    );
  }
  await writeSection(
    out,
    'command-fanout',
    [
      '## Command fan-out through the server',
      '',
      'A `kernex server` process; P-256 devices registered beforehand hold JWT-authenticated sessions',
      `(MQTT.js in ${workers} worker threads) subscribed to their \`kx/{id}/cmd\`. One \`POST /api/v1/deployments\``,
      '(`target: {all: true}`) starts the clock; per device, the time until its `deploy` command arrives',
      '(`control/bench/src/fanout.bench.ts`). The clients do not report back, so this is dispatch alone.',
      '10,000 devices: `npm run bench -- --only fanout --fanout-devices 10000`.',
      '',
      renderTable(rows),
    ].join('\n'),
  );
}

if (selected('console')) {
  const { consoleRun } = await import('./console.bench.js');
  const n = Number(values['console-devices']);
  const connectRate = Number(values['connect-rate']);
  const results: Array<Awaited<ReturnType<typeof consoleRun>>> = [];
  for (let r = 0; r < runs; r++) {
    results.push(await consoleRun(n, workers, connectRate));
    process.stderr.write(`  console ${n} run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
  }
  const all = (pick: (r: (typeof results)[number]) => number[]): number[] => results.flatMap(pick);
  const limitedBy = 'one machine: the server, the swarm holding the sessions and Chromium share its cores';
  await writeSection(
    out,
    'console',
    [
      `## Web console at ${n.toLocaleString('en-US')} devices`,
      '',
      `A \`kernex server\` process with ${n.toLocaleString('en-US')} registered P-256 devices, all but one holding MQTT sessions`,
      `(MQTT.js in ${workers} worker threads), and Debian's Chromium (headless) signed in to the console`,
      '(`control/bench/src/console.bench.ts`). **First render**: from navigation to the devices screen until',
      'its first page (50 rows, paged by the server) is on screen. **Presence to screen**: from the last device',
      'connecting or disconnecting (MQTT.js in the bench process) until the word in its row changes, seen by a',
      'MutationObserver in the page: broker presence event → live event bus → SSE → the row. Figures pool every',
      `load and change of ${runs} run(s). \`npm run bench -- --only console --console-devices 10000\`.`,
      '',
      renderTable([
        { figure: 'devices screen first render', unit: 'ms', kernex: summarize(all((r) => r.firstRenderMs)), limitedBy, target: 'fast at 10,000 (DESIGN §9)' },
        { figure: 'presence change to screen', unit: 'ms', kernex: summarize(all((r) => r.presenceMs)), limitedBy, target: '< 10,000 ms (DESIGN §9)' },
      ]),
    ].join('\n'),
  );
}

if (selected('serving')) {
  const { bundleServingRun } = await import('./bundle-serving.bench.js');
  const downloads = Number(values.downloads);
  const mib = Number(values['bundle-mib']);
  const results = [];
  for (let r = 0; r < runs; r++) {
    results.push(await bundleServingRun(downloads, mib));
    process.stderr.write(`  bundle serving run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
  }
  await writeSection(
    out,
    'bundle-serving',
    [
      `## Bundle serving (${downloads} downloads at once, ${mib} MiB bundle)`,
      '',
      `${downloads} HTTP clients in the bench process GET \`/api/v1/bundles/{id}/blob\` of a \`kernex server\` process at`,
      `once; the reference reads the stored blob file with ${downloads} concurrent streams in the bench process, which is`,
      'what the disk (here: the page cache) can give (`control/bench/src/bundle-serving.bench.ts`).',
      '',
      renderTable([
        {
          figure: 'aggregate download throughput',
          unit: 'MiB/s',
          kernex: summarize(results.map((r) => r.serverMiBps)),
          reference: { name: 'file read', summary: summarize(results.map((r) => r.diskMiBps)) },
          limitedBy: `CPU, not the disk: server process ${results.at(-1)!.serverCpuShare.toFixed(2)} cores, downloading clients ${results.at(-1)!.clientCpuShare.toFixed(2)} cores (last run), on 2 cores; the file read is the disk's ceiling`,
          target: 'the disk',
        },
      ]),
    ].join('\n'),
  );
}

if (selected('delta')) {
  const { deltaRun } = await import('./delta.bench.js');
  const packages = Number(values['delta-packages']);
  // pkg-18 has 30 files: about 1 % of the ~3,000 files of 128 packages.
  const results = [];
  for (let r = 0; r < runs; r++) {
    results.push(await deltaRun(packages, 18));
    process.stderr.write(`  delta run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
  }
  const last = results.at(-1)!;
  const pct = (x: number): number => (x * 100) / last.fullBytes;
  await writeSection(
    out,
    'delta',
    [
      `## Delta transfer (${last.files} files, ${last.changedFiles} changed: one dependency bumped)`,
      '',
      `A deterministic Node app (\`control/src/bench/node-app.ts\`): ${packages} packages in \`node_modules\`, JS-like text files,`,
      'symlinks; B bumps one package, so every file of it changes. A `kernex server` process makes the delta A→B and',
      'serves it; bytes are what its delta URL sent. The reference is `zstd -19 --long=27 --patch-from=A.tar B.tar`',
      "(Debian's zstd) over the uncompressed tars: a binary diff the device would need A's tar to apply. The rebuild",
      "runs the agent's own code in a child process: B from A's unpacked tree plus the delta, then every file of B",
      'checked against the signed index (size, mode, sha256, nothing extra); compared with unpacking the full bundle',
      '(`control/src/bench/delta.bench.ts`, `delta-rebuild-child.ts`). Peak RSS is the whole Node process',
      `(about ${Math.round(last.rebuild.baseRssMiB)} MiB before the rebuild starts).`,
      '',
      renderTable([
        {
          figure: 'bytes to the device for B',
          unit: 'bytes',
          kernex: summarize(results.map((r) => r.deltaBytes)),
          reference: { name: 'zstd --patch-from', summary: summarize(results.map((r) => r.zstdPatchBytes)) },
          limitedBy: `whole changed files, gzip; ${pct(last.deltaBytes).toFixed(2)} % of the full bundle (${last.fullBytes.toLocaleString('en-US')} bytes), zstd's patch ${pct(last.zstdPatchBytes).toFixed(2)} %`,
          target: 'under 3 % of the full bundle',
        },
        {
          figure: 'share of the full bundle',
          unit: '%',
          kernex: summarize(results.map((r) => (r.deltaBytes * 100) / r.fullBytes)),
          reference: { name: 'zstd --patch-from', summary: summarize(results.map((r) => (r.zstdPatchBytes * 100) / r.fullBytes)) },
          limitedBy: 'file granularity: a changed file travels whole',
          target: '< 3 %',
        },
        {
          figure: 'agent CPU to rebuild and check B',
          unit: 'ms',
          kernex: summarize(results.map((r) => r.rebuild.cpuMs)),
          reference: { name: 'unpacking the full bundle', summary: summarize(results.map((r) => r.full.cpuMs)) },
          limitedBy: 'hashing every file of A it reuses and of B it checks (sha256), one thread',
        },
        {
          figure: 'agent peak RSS while rebuilding',
          unit: 'MiB',
          kernex: summarize(results.map((r) => r.rebuild.peakRssMiB)),
          reference: { name: 'unpacking the full bundle', summary: summarize(results.map((r) => r.full.peakRssMiB)) },
          limitedBy: 'the Node process itself; files are streamed, the index is held whole',
        },
      ]),
    ].join('\n'),
  );
}

if (selected('idle')) {
  const { idleBytesRun } = await import('./idle-bytes.bench.js');
  // The agent's defaults (agent/src/config.ts); control does not import the agent package.
  const DEFAULT_TELEMETRY_S = 900;
  const DEFAULT_KEEPALIVE_S = 300;
  const idle = await idleBytesRun(DEFAULT_TELEMETRY_S, DEFAULT_KEEPALIVE_S);
  idleMqttBytes = idle.bytesPerHour;
  process.stderr.write(`  idle: ${JSON.stringify(idle)}\n`);
  const one = (v: number) => summarize([v]);
  await writeSection(
    out,
    'idle-bytes',
    [
      `## Bytes on the wire per idle device-hour (agent defaults: telemetry ${DEFAULT_TELEMETRY_S} s, keepalive ${DEFAULT_KEEPALIVE_S} s)`,
      '',
      'A real `kernex-agent` (P-256 key) talks to a real server through a byte-counting loopback',
      'proxy (`control/bench/src/idle-bytes.bench.ts`); each packet kind is measured over a shortened',
      'window and scaled to an hour: telemetry samples, PINGREQ/PINGRESP pairs (MQTT.js pings only',
      'after a keepalive period with nothing sent), and the session set-up of the token-renewal',
      'reconnect twice a day. An RSA-4096 key adds ~600 bytes to each CONNECT (the JWT signature).',
      '',
      renderTable([
        { figure: 'session set-up (CONNECT … first telemetry)', unit: 'bytes', kernex: one(idle.sessionSetupBytes), limitedBy: 'JWT size (ES256 here)' },
        { figure: 'one telemetry message', unit: 'bytes', kernex: one(idle.telemetryBytes), limitedBy: 'JSON payload + topic' },
        { figure: 'one keepalive exchange', unit: 'bytes', kernex: one(idle.keepaliveBytes), limitedBy: 'MQTT fixed headers' },
        { figure: 'idle device-hour, MQTT bytes', unit: 'bytes', kernex: one(idle.bytesPerHour), limitedBy: 'telemetry period', target: '< 4 KB' },
        { figure: 'idle device-hour, with TCP/IPv4 headers (estimate)', unit: 'bytes', kernex: one(idle.bytesPerHourWithHeaders), limitedBy: '52-byte headers per segment', target: '< 4 KB' },
      ]),
    ].join('\n'),
  );
}
if (selected('server-auth')) {
  const { authConnectRun } = await import('./fleet.bench.js');
  const n = Number(values['server-devices']);
  const results = [];
  for (let r = 0; r < runs; r++) {
    results.push(await authConnectRun(n, workers));
    process.stderr.write(`  auth connect run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
  }
  await writeSection(
    out,
    'server-connect',
    [
      `## Connect storm through the whole server (${n} devices, authentication on, PostgreSQL directory)`,
      '',
      'A `kernex server` process (embedded PostgreSQL, the real DeviceDirectory) with',
      `${n} P-256 devices registered beforehand; MQTT.js clients in ${workers} worker threads each`,
      'connect with their own ES256 JWT and subscribe to their `kx/{id}/cmd` as fast as they can',
      '(`control/bench/src/fleet.bench.ts`). Cold: every JWT is verified (ES256 + a directory look-up).',
      'Warm: the same devices reconnect with the same tokens, which the credential cache knows.',
      '',
      renderTable([
        { figure: 'connect storm, cold (JWT verified)', unit: 'devices/s', kernex: summarize(results.map((r) => r.coldPerS)), limitedBy: 'the server process (one core: ES256 verify, directory look-up, presence write); the clients use the other core' },
        { figure: 'connect storm, warm (credential cache)', unit: 'devices/s', kernex: summarize(results.map((r) => r.warmPerS)), limitedBy: 'the server process (CONNECT, SUBSCRIBE, retained status, presence write)' },
        { figure: 'server memory per connected device, RSS after a full GC', unit: 'bytes', kernex: summarize(results.map((r) => r.serverBytesPerDevice)), limitedBy: 'the server process: live heap (row below) plus V8 heap pages and native memory around it (PostgreSQL excluded)', target: '< 20 KB' },
        { figure: 'server memory per connected device, RSS at once after the storm', unit: 'bytes', kernex: summarize(results.map((r) => r.serverBytesPerDeviceAtOnce)), limitedBy: "as above plus the storm's garbage not yet collected (how this row was measured before 2026-12-01)" },
        { figure: 'server live JavaScript heap per connected device', unit: 'bytes', kernex: summarize(results.map((r) => r.serverHeapPerDevice)), limitedBy: 'heap snapshots: BENCHMARKS.md notes on memory' },
      ]),
      '',
      `Memory: growth per device from a baseline taken after 20 other devices came and went, read after a`,
      'full garbage collection (`memory-probe.ts`, preloaded into the server for the benchmark only).',
    ].join('\n'),
  );
}

if (selected('auth')) {
  const n = Number(values['auth-devices']);
  process.stderr.write(`connect storm with authentication: ${n} P-256 devices, ${workers} client worker threads, ${runs} runs\n`);
  const devices = await makeDevices(n);
  const results: Array<ConnectStormRun & { verifyPerS: number }> = [];
  for (let r = 0; r < runs; r++) {
    const verifyPerS = await verifyRate(devices);
    results.push({ ...(await connectStormRun(devices, workers)), verifyPerS });
    process.stderr.write(`  run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
  }
  const pinned = results.every((x) => x.pinned);
  const row = (figure: string, pick: (x: ConnectStormRun & { verifyPerS: number }) => number, limitedBy: string, unit = 'connects/s'): FigureRow => ({
    figure,
    unit,
    kernex: summarize(results.map(pick)),
    limitedBy,
  });
  await writeSection(
    out,
    'connect-auth',
    [
      `## Connect storm with authentication (${n} P-256 devices)`,
      '',
      `The broker runs in its own process${pinned ? ', pinned to one core (`taskset -c 0`)' : ''}, with authentication on and`,
      'the devices in an in-memory `DeviceDirectory` (keys parsed beforehand; the server keeps 256 parsed), so',
      'the figure is the broker\'s: no PostgreSQL round trip. MQTT.js clients in worker threads of',
      'another process connect every device as fast as they can (rate = N / first CONNECT to last',
      'CONNACK): first **cold**, each ES256 JWT verified, then **warm**, the same JWTs again, answered',
      'from the broker\'s credential cache (`control/bench/src/connect-storm.bench.ts`).',
      '',
      renderTable([
        row('cold connects (verify)', (x) => x.coldPerS, 'the broker core: ES256 verify (node:crypto) + Aedes CONNECT handling'),
        row('warm connects (cached)', (x) => x.warmPerS, 'the broker core: Aedes CONNECT handling; the clients share the other core'),
        row('ES256 JWT verifications alone, one thread', (x) => x.verifyPerS, 'verifyDeviceJwt (node:crypto) in the bench process, no MQTT', 'verifies/s'),
      ]),
    ].join('\n'),
  );
}

if (selected('sim')) {
  const { simFleetRun } = await import('./sim-fleet.bench.js');
  const n = Number(values['sim-devices']);
  const rate = Number(values['connect-rate']);
  const results = [];
  for (let r = 0; r < runs; r++) {
    results.push(await simFleetRun(n, workers, rate));
    process.stderr.write(`  sim fleet run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
  }
  const cpu = results.at(-1)!;
  await writeSection(
    out,
    'sim-fleet',
    [
      `## A simulated fleet on one server: \`kernex sim --devices ${n}\``,
      '',
      `The real simulator (${workers} worker threads, connect rate ${rate}/s, keys from its cache) against a`,
      '`kernex server` process on the same machine: each device registers over HTTP, then opens its',
      'JWT-authenticated MQTT session with the agent\'s default telemetry and keepalive',
      '(`control/bench/src/sim-fleet.bench.ts`). Time runs from starting the simulator to the server\'s',
      '`kernex_devices_connected` reading N.',
      `CPU while the fleet came up (last run): server ${cpu.serverCpuS.toFixed(1)} s, simulator ${cpu.simCpuS.toFixed(1)} s.`,
      '',
      renderTable([
        { figure: 'time to all devices online', unit: 's', kernex: summarize(results.map((r) => r.secondsToAllOnline)), limitedBy: `the connect-rate ramp (${rate}/s) and ${cpu.simCpuS > cpu.serverCpuS ? 'the simulator process (more CPU than the server)' : 'the server process (more CPU than the simulator)'}` },
        { figure: 'server memory per connected device', unit: 'bytes', kernex: summarize(results.map((r) => r.serverBytesPerDevice)), limitedBy: 'server RSS growth over the whole run: connections plus the heap grown by N registrations (V8 keeps it); the per-connection figure is the server connect-storm row', target: '< 30 KB' },
      ]),
    ].join('\n'),
  );
}

if (selected('polling')) {
  const { pollingRun } = await import('./polling.bench.js');
  const pollers = 200;
  const results: Array<Awaited<ReturnType<typeof pollingRun>>> = [];
  for (let r = 0; r < runs; r++) {
    results.push(await pollingRun(pollers));
    process.stderr.write(`  polling run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
  }
  const poll = (pick: (r: (typeof results)[number]) => number) => ({ name: 'HTTP polling, 60 s', summary: summarize(results.map(pick)) });
  const notMeasured = summarize([NaN]);
  await writeSection(
    out,
    'push-vs-polling',
    [
      '## Push versus the 60-second HTTP polling loop',
      '',
      `The reference is measured for real on loopback (\`control/bench/src/polling.bench.ts\`): ${pollers} pollers at random`,
      'phases with keep-alive and a device-JWT-sized bearer token; a command is queued at a random moment and each',
      "poller's latency is the time until its next poll fetches it. Kernex figures come from the fan-out and idle-bytes",
      'runs above (n/a when those were not selected in this run).',
      '',
      renderTable([
        { figure: `command latency p50${fanoutForPolling ? `, ${fanoutForPolling.devices} devices` : ''}`, unit: 'ms', kernex: fanoutForPolling?.p50 ?? notMeasured, reference: poll((r) => r.latencyP50Ms), limitedBy: 'push: dispatch; polling: the 60 s interval' },
        { figure: `command latency p99${fanoutForPolling ? `, ${fanoutForPolling.devices} devices` : ''}`, unit: 'ms', kernex: fanoutForPolling?.p99 ?? notMeasured, reference: poll((r) => r.latencyP99Ms), limitedBy: 'push: dispatch; polling: the 60 s interval' },
        { figure: 'idle bytes per device-hour (TCP payload, no IP/TCP headers)', unit: 'bytes', kernex: idleMqttBytes === undefined ? notMeasured : summarize([idleMqttBytes]), reference: poll((r) => r.idleBytesPerDeviceHour), limitedBy: 'push: telemetry period; polling: 60 requests/hour of headers + token', target: '< 4 KB' },
      ]),
    ].join('\n'),
  );
}

if (named('cluster')) {
  const { clusterRun } = await import('./cluster.bench.js');
  const { renderClusterSection } = await import('./cluster-report.js');
  const opts = {
    fanoutDevices: values['cluster-devices']!.split(',').map(Number),
    stormDevices: Number(values['cluster-storm-devices']),
    failoverDevices: Number(values['cluster-failover-devices']),
    swarmProcesses: Number(values['swarm-processes']),
    connectRate: Number(values['cluster-connect-rate']),
  };
  const load0 = os.loadavg();
  const started = Date.now();
  process.stderr.write(`cluster: ${JSON.stringify(opts)}, load average ${load0.map((x) => x.toFixed(2)).join(' ')}\n`);
  const result = await clusterRun(opts);
  const minutes = (Date.now() - started) / 60_000;
  process.stderr.write(`cluster: done in ${minutes.toFixed(1)} min: ${JSON.stringify(result)}\n`);
  await writeSection(out, 'cluster', renderClusterSection(result, opts, { loadBefore: load0, minutes }));
}

process.stderr.write(`wrote ${out}\n`);
