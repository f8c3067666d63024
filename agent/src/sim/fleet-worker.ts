import { createPrivateKey } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { deviceIdFromPublicKey, generateDeviceKey, type Command, type ExecutionState } from '@kernex/shared';
import pino from 'pino';
import { Device, type CommandHandler } from '../device.js';
import { SimulatedInstaller } from './sim-installer.js';
import { SimulatedMetrics } from './sim-metrics.js';
import { emptyStats, type FromWorker, type ToWorker, type WorkerSettings, type WorkerSlice, type WorkerStats } from './worker-messages.js';

/**
 * One simulator worker thread: makes the keys its slice lacks, then starts
 * its devices at its share of the connect rate, each a real {@link Device}
 * (registration, JWT-authenticated MQTT session, telemetry, outbox) with
 * memory state, simulated metrics and the simulated installer. Reports its
 * counters every second; on `stop` every device disconnects in order.
 */
const { settings, slice } = workerData as { settings: WorkerSettings; slice: WorkerSlice };
const port = parentPort!;
const log = pino({ name: 'kernex-sim', level: settings.logLevel }, pino.destination(2));
const stats = emptyStats();
const devices: Device[] = [];
const executionStates = new Map<string, ExecutionState>();
const flapTimers = new Set<NodeJS.Timeout>();
let stopping = false;

function send(msg: FromWorker): void {
  port.postMessage(msg);
}

function snapshot(): WorkerStats {
  const executions: WorkerStats['executions'] = {};
  for (const s of executionStates.values()) executions[s] = (executions[s] ?? 0) + 1;
  return { ...stats, connected: devices.filter((d) => d.connected).length, executions };
}

/** Exponentially distributed delay with the given mean: link cuts as a Poisson process. */
function exponentialMs(meanS: number): number {
  return -Math.log(1 - Math.random()) * meanS * 1000;
}

function counting(handler: CommandHandler): CommandHandler {
  return {
    handle(command: Command, device) {
      stats.commands++;
      return handler.handle(command, device);
    },
  };
}

async function makeKeys(): Promise<{ pem: string; deviceId: string }[]> {
  const made: [number, string][] = [];
  const keys = await Promise.all(
    slice.keys.map(async (pem, i) => {
      if (pem === undefined) {
        pem = (await generateDeviceKey(settings.keyType)).privateKeyPem;
        made.push([slice.first + i, pem]);
      }
      return { pem, deviceId: deviceIdFromPublicKey(createPrivateKey(pem)) };
    }),
  );
  send({ type: 'keys', made, deviceIds: keys.map((k, i) => [slice.first + i, k.deviceId]) });
  return keys;
}

function startDevice(index: number, pem: string, deviceId: string): void {
  const installer = new SimulatedInstaller({
    download: Math.random() < settings.downloadSample,
    failRate: settings.failRate,
    soakFailRate: settings.soakFailRate,
    installMs: settings.installMs,
    onState: (executionId, state) => executionStates.set(`${deviceId}/${executionId}`, state),
    onBytes: (n) => (stats.downloadedBytes += n),
  });
  const device = new Device({
    server: settings.server,
    stateDir: '',
    state: 'memory',
    key: { privateKey: createPrivateKey(pem), deviceId },
    enrollToken: settings.enrollToken,
    keyType: settings.keyType,
    telemetryS: settings.telemetryS,
    keepaliveS: settings.keepaliveS,
    reconnectMaxS: settings.reconnectMaxS,
    mqttUrl: settings.mqttUrl,
    ca: settings.ca === undefined ? undefined : Buffer.from(settings.ca),
    name: `${settings.namePrefix}-${index}`,
    hardware: { arch: 'sim', platform: 'linux', simulated: true },
    version: settings.version,
    log: log.child({ device: index }),
    commands: counting(installer),
    bundles: installer,
    metrics: new SimulatedMetrics(),
  });
  devices.push(device);
  stats.started++;
  let seen = false;
  device.on('telemetry', () => stats.telemetry++);
  device.on('connected', () => {
    if (!seen) stats.everConnected++;
    seen = true;
    if (settings.flapMeanS > 0 && !stopping && !steady) {
      const timer = setTimeout(() => {
        flapTimers.delete(timer);
        if (stopping || steady) return;
        stats.flaps++;
        device.dropLink();
      }, exponentialMs(settings.flapMeanS));
      flapTimers.add(timer);
    }
  });
  device.start().catch((err: Error) => log.error({ device: index, err: err.message }, 'simulated device failed to start'));
}

async function run(): Promise<void> {
  const keys = await makeKeys();
  const t0 = performance.now();
  for (const [i, k] of keys.entries()) {
    if (stopping) return;
    // Ramp: device i starts at i / rate seconds after the first.
    const due = t0 + (i / settings.connectRate) * 1000;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (stopping) return;
    startDevice(slice.first + i, k.pem, k.deviceId);
  }
}

const ticker = setInterval(() => send({ type: 'stats', stats: snapshot() }), 1000);

let steady = false;

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'steady') {
    steady = true;
    for (const t of flapTimers) clearTimeout(t);
    flapTimers.clear();
    return;
  }
  if (stopping) return;
  stopping = true;
  for (const t of flapTimers) clearTimeout(t);
  clearInterval(ticker);
  const final = snapshot();
  void Promise.allSettled(devices.map((d) => d.stop())).then(() => {
    send({ type: 'stopped', stats: final });
    port.close();
  });
});

run().catch((err: Error) => send({ type: 'error', message: err.message }));
