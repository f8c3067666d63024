import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { brokerLevelRun, type BrokerRun } from './broker-level.bench.js';
import { deploymentRun, type DeploymentRun } from './deployment.bench.js';
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
    'deploy-devices': { type: 'string', default: '1000' },
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
if (selected('deployment')) {
  const fleet = Number(values['deploy-devices']);
  const downloads = 100;
  const bundleMiB = 2;
  process.stderr.write(`deployment rows: ${fleet} devices, ${downloads} downloads of ${bundleMiB} MiB, ${runs} runs\n`);
  const results: DeploymentRun[] = [];
  for (let r = 0; r < runs; r++) {
    results.push(await deploymentRun(fleet, downloads, bundleMiB * 2 ** 20));
    process.stderr.write(`  run ${r + 1}/${runs}: ${JSON.stringify(results.at(-1))}\n`);
  }
  const row = (figure: string, unit: string, pick: (r: DeploymentRun) => number, limitedBy: string, target?: string): FigureRow => ({
    figure,
    unit,
    kernex: summarize(results.map(pick)),
    limitedBy,
    target,
  });
  await writeSection(
    out,
    'deployment',
    [
      `## Deployments end to end (${fleet} devices)`,
      '',
      'One in-process server (embedded PostgreSQL, Aedes with JWT authentication and ACL, Fastify);',
      `${fleet} MQTT.js clients with P-256 keys, registered and connected like devices, in the`,
      'same Node.js process as the server, on loopback (`control/src/bench/deployment.bench.ts`).',
      'Dispatch: from `POST /api/v1/deployments` (target `all`) to each device holding its `deploy`',
      `command. Download: ${downloads} devices fetch a ${bundleMiB} MiB bundle at once, each with its own`,
      '`kernex-http` JWT (device access check included).',
      '',
      renderTable([
        row('dispatch p50', 'ms', (r) => r.dispatchP50Ms, 'one transaction marks every execution sent, then 1,000 QoS 1 publishes; the clients share the server\'s 2 cores'),
        row('dispatch p99', 'ms', (r) => r.dispatchP99Ms, 'same; the last publishes of the batch'),
        row('download throughput', 'MiB/s', (r) => r.downloadMiBps, 'loopback copy in one Node.js process for server and clients (file stream → socket → fetch)'),
      ]),
    ].join('\n'),
  );
}
process.stderr.write(`wrote ${out}\n`);
