import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { brokerLevelRun, type BrokerRun } from './broker-level.bench.js';
import { connectStormRun, makeDevices, verifyRate, type ConnectStormRun } from './connect-storm.bench.js';
import { machineFacts } from './machine.js';
import { renderTable, writeSection, type FigureRow } from './report.js';
import { summarize } from './stats.js';
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
    out: { type: 'string' },
  },
});
const runs = Number(values.runs);
const devices = Number(values.devices);
const workers = Number(values.workers);
const out = values.out ?? path.resolve(fileURLToPath(new URL('../../../', import.meta.url)), 'BENCHMARKS.md');
const selected = (name: string): boolean => !values.only || values.only.split(',').includes(name);

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
      `${workers} worker threads of one process (\`control/src/bench/broker-level.bench.ts\`).`,
      '',
      renderTable([
        row('connect storm', 'connects/s', (r) => r.connectsPerS, 'the broker process (one core, JS CONNECT handling); clients use the other core'),
        row('fan-out p50', 'ms', (r) => r.fanoutP50Ms, 'publisher + broker'),
        row('fan-out p99', 'ms', (r) => r.fanoutP99Ms, 'publisher + broker', '< 1,000 ms'),
        row('memory per connection', 'bytes', (r) => r.bytesPerConnection, 'broker heap per client', '< 30 KB'),
      ]),
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
      'the first publish to the last write (`control/src/bench/telemetry.bench.ts`). Batches of up to',
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

if (selected('idle')) {
  const { idleBytesRun } = await import('./idle-bytes.bench.js');
  // The agent's defaults (agent/src/config.ts); control does not import the agent package.
  const DEFAULT_TELEMETRY_S = 900;
  const DEFAULT_KEEPALIVE_S = 300;
  const idle = await idleBytesRun(DEFAULT_TELEMETRY_S, DEFAULT_KEEPALIVE_S);
  process.stderr.write(`  idle: ${JSON.stringify(idle)}\n`);
  const one = (v: number) => summarize([v]);
  await writeSection(
    out,
    'idle-bytes',
    [
      `## Bytes on the wire per idle device-hour (agent defaults: telemetry ${DEFAULT_TELEMETRY_S} s, keepalive ${DEFAULT_KEEPALIVE_S} s)`,
      '',
      'A real `kernex-agent` (P-256 key) talks to a real server through a byte-counting loopback',
      'proxy (`control/src/bench/idle-bytes.bench.ts`); each packet kind is measured over a shortened',
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
      'the devices in an in-memory `DeviceDirectory` (keys parsed once, as the server caches them), so',
      'the figure is the broker\'s: no PostgreSQL round trip. MQTT.js clients in worker threads of',
      'another process connect every device as fast as they can (rate = N / first CONNECT to last',
      'CONNACK): first **cold**, each ES256 JWT verified, then **warm**, the same JWTs again, answered',
      'from the broker\'s credential cache (`control/src/bench/connect-storm.bench.ts`).',
      '',
      renderTable([
        row('cold connects (verify)', (x) => x.coldPerS, 'the broker core: ES256 verify (node:crypto) + Aedes CONNECT handling'),
        row('warm connects (cached)', (x) => x.warmPerS, 'the broker core: Aedes CONNECT handling; the clients share the other core'),
        row('ES256 JWT verifications alone, one thread', (x) => x.verifyPerS, 'verifyDeviceJwt (node:crypto) in the bench process, no MQTT', 'verifies/s'),
      ]),
    ].join('\n'),
  );
}
process.stderr.write(`wrote ${out}\n`);
