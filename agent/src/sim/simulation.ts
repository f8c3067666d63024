import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DeviceKeyType, ExecutionState } from '@kernex/shared';
import { DEFAULT_KEEPALIVE_S, DEFAULT_TELEMETRY_S } from '../config.js';
import { HttpClient, type HttpAnswer } from '../device-http-client.js';
import { defaultKeyCacheDir, KeyPool } from './key-pool.js';
import { emptyStats, type FromWorker, type WorkerSettings, type WorkerStats } from './worker-messages.js';
import { SimulationError } from '../errors.js';

/** Options of {@link runSimulation}; the `kernex sim` flags mirror them. */
export interface SimulationOptions {
  /** The server's HTTP base URL. */
  server: string;
  devices: number;
  /** Enrollment token every device registers with. */
  enrollToken?: string;
  /** Admin API key: with no `enrollToken`, the simulation creates a token for `devices` uses. */
  adminKey?: string;
  /** Tags of the token the simulation makes with `adminKey` (default `['sim']`, DESIGN §7). */
  tags?: string[];
  keyType?: DeviceKeyType;
  /** Directory of the key cache (default ~/.cache/kernex/sim-keys). */
  keyCache?: string;
  /** Worker threads (default: the number of cores, at most one per 50 devices). */
  workers?: number;
  /** Devices started per second over the whole fleet (default 200). */
  connectRate?: number;
  telemetryS?: number;
  keepaliveS?: number;
  reconnectMaxS?: number;
  /** Use this broker URL instead of the ones registration hands out. */
  mqttUrl?: string;
  /** A PEM file of CA certificates every device trusts for https:// and mqtts:// (KERNEX_CA_FILE), instead of the system store. */
  caFile?: string;
  /** Share of devices that really download bundles (0..1, default 1). */
  downloadSample?: number;
  failRate?: number;
  /** Share of soaks whose health check fails partway (0..1, default 0). */
  soakFailRate?: number;
  installMs?: number;
  /** Mean seconds between random link cuts per device (exponential); 0 = steady. */
  flapMeanS?: number;
  namePrefix?: string;
  /** pino level of the devices' own logs, on stderr (default 'warn'). */
  logLevel?: string;
  version?: string;
}

/** The fleet's counters, summed over the workers. */
export interface SimulationStats extends WorkerStats {
  devices: number;
  /** Seconds since the simulation started. */
  elapsedS: number;
  /** Keys taken from the cache and keys made in this run. */
  keys: { cached: number; made: number };
  workers: number;
}

/**
 * A running simulation. Events: `stats` (SimulationStats, about every
 * second), `error` (Error from a worker).
 */
export interface Simulation extends EventEmitter {
  /** Device ids by index, filled as the workers load their keys. */
  readonly deviceIds: string[];
  stats(): SimulationStats;
  /** Resolves when `predicate(stats)` holds (checked on every stats report). */
  waitFor(predicate: (s: SimulationStats) => boolean): Promise<SimulationStats>;
  /** Ends flapping: no more link cuts (devices that are down come back by themselves). */
  steady(): void;
  /** Every device disconnects in order, the workers end; resolves with the final counters. */
  stop(): Promise<SimulationStats>;
}

export const DEFAULTS = {
  keyType: 'p256' as DeviceKeyType,
  connectRate: 200,
  // The agent's own defaults, so an idle simulated fleet costs what a real one does.
  telemetryS: DEFAULT_TELEMETRY_S,
  keepaliveS: DEFAULT_KEEPALIVE_S,
  reconnectMaxS: 30,
  downloadSample: 1,
  failRate: 0,
  soakFailRate: 0,
  installMs: 1000,
  flapMeanS: 0,
  namePrefix: 'sim',
  logLevel: 'warn',
  tags: ['sim'],
};

/** Creates an enrollment token for `uses` devices, with `tags`, with the admin key (DESIGN §2, §7); through the devices' client, so `ca` is trusted. */
async function createEnrollmentToken(http: HttpClient, server: string, adminKey: string, uses: number, tags: string[]): Promise<string> {
  let res: HttpAnswer;
  try {
    res = await http.text(new URL('/api/v1/enrollment-tokens', server), {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ uses, expiresInS: 86_400, ...(tags.length ? { tags } : {}) }),
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SimulationError(`cannot reach the Kernex server at ${server} (${e.code ?? e.message})`, { cause: err });
  }
  let body: { token?: string; message?: string; code?: string } = {};
  try {
    body = JSON.parse(res.text) as typeof body;
  } catch {
    // not the contract's body (a proxy?): the status says enough
  }
  if (res.status === 201 && body.token) return body.token;
  const why = `${body.message ?? STATUS_CODES[res.status] ?? 'no answer'} (${res.status}${body.code ? ` ${body.code}` : ''})`;
  if (res.status === 401 || res.status === 403) {
    throw new SimulationError(`the API key cannot make an enrollment token: ${why}; use an admin key, or pass --enroll-token`);
  }
  throw new SimulationError(`cannot make an enrollment token: ${why}`);
}

/**
 * Starts `devices` simulated devices spread over worker threads and answers
 * at once with a handle; the devices come up at `connectRate` per second.
 */
export async function runSimulation(options: SimulationOptions): Promise<Simulation> {
  const o = { ...DEFAULTS, ...stripUndefined(options) };
  if (!Number.isInteger(o.devices) || o.devices < 1) throw new RangeError('devices must be a positive integer');
  let ca: string | undefined;
  try {
    ca = o.caFile === undefined ? undefined : await fs.readFile(o.caFile, 'utf8');
  } catch (err) {
    throw new SimulationError(`KERNEX_CA_FILE (--ca-file) cannot be read: ${(err as Error).message}`, { cause: err });
  }
  const http = new HttpClient({ ca: ca === undefined ? undefined : Buffer.from(ca) });
  const enrollToken = o.enrollToken ?? (o.adminKey ? await createEnrollmentToken(http, o.server, o.adminKey, o.devices, o.tags) : undefined);
  const pool = await KeyPool.open(o.keyCache ?? defaultKeyCacheDir(), o.keyType);
  const cached = Math.min(pool.size, o.devices);
  const workerCount = Math.max(1, Math.min(o.workers ?? os.availableParallelism(), Math.ceil(o.devices / 50)));
  const keys = pool.take(o.devices);
  const madeKeys = new Map<number, string>();
  const deviceIds: string[] = [];
  const latest = new Map<Worker, WorkerStats>();
  const t0 = Date.now();
  const sim = new EventEmitter() as Simulation;
  let keyReports = 0;

  const sum = (): SimulationStats => {
    const s: SimulationStats = { ...emptyStats(), devices: o.devices, elapsedS: (Date.now() - t0) / 1000, keys: { cached, made: madeKeys.size }, workers: workerCount };
    for (const w of latest.values()) {
      for (const k of ['started', 'connected', 'everConnected', 'commands', 'telemetry', 'flaps', 'downloadedBytes'] as const) s[k] += w[k];
      for (const [state, n] of Object.entries(w.executions)) s.executions[state as ExecutionState] = (s.executions[state as ExecutionState] ?? 0) + n;
    }
    return s;
  };

  const settings: WorkerSettings = {
    server: o.server,
    enrollToken,
    keyType: o.keyType,
    telemetryS: o.telemetryS,
    keepaliveS: o.keepaliveS,
    reconnectMaxS: o.reconnectMaxS,
    mqttUrl: o.mqttUrl,
    ca,
    namePrefix: o.namePrefix,
    connectRate: o.connectRate / workerCount,
    downloadSample: o.downloadSample,
    failRate: o.failRate,
    soakFailRate: o.soakFailRate,
    installMs: o.installMs,
    flapMeanS: o.flapMeanS,
    logLevel: o.logLevel,
    version: o.version ?? '0.0.0-sim',
  };

  const workers: Worker[] = [];
  const stopped: Promise<void>[] = [];
  // Devices are dealt in contiguous slices so device i always has key i.
  const per = Math.ceil(o.devices / workerCount);
  for (let w = 0; w < workerCount; w++) {
    const first = w * per;
    const slice = { first, keys: keys.slice(first, Math.min(o.devices, first + per)) };
    if (slice.keys.length === 0) continue;
    const worker = new Worker(new URL('./fleet-worker.js', import.meta.url), { workerData: { settings, slice } });
    workers.push(worker);
    latest.set(worker, emptyStats());
    stopped.push(
      new Promise<void>((resolve) => {
        worker.on('message', (msg: FromWorker) => {
          switch (msg.type) {
            case 'keys':
              for (const [i, pem] of msg.made) madeKeys.set(i, pem);
              for (const [i, id] of msg.deviceIds) deviceIds[i] = id;
              if (++keyReports === workers.length) void pool.add(madeKeys).catch((err: Error) => sim.emit('error', err));
              break;
            case 'stats':
            case 'stopped':
              latest.set(worker, msg.stats);
              if (msg.type === 'stats') sim.emit('stats', sum());
              break;
            case 'error':
              sim.emit('error', new Error(msg.message));
              break;
          }
        });
        worker.on('error', (err) => sim.emit('error', err));
        worker.on('exit', () => resolve());
      }),
    );
  }

  let stopping: Promise<SimulationStats> | undefined;
  Object.assign(sim, {
    deviceIds,
    stats: sum,
    waitFor(predicate: (s: SimulationStats) => boolean): Promise<SimulationStats> {
      return new Promise((resolve, reject) => {
        const check = (s: SimulationStats): void => {
          if (!predicate(s)) return;
          sim.off('stats', check);
          sim.off('error', reject);
          resolve(s);
        };
        sim.on('stats', check);
        sim.once('error', reject);
        check(sum());
      });
    },
    steady(): void {
      for (const w of workers) w.postMessage({ type: 'steady' });
    },
    stop(): Promise<SimulationStats> {
      stopping ??= (async () => {
        for (const w of workers) w.postMessage({ type: 'stop' });
        await Promise.all(stopped);
        return sum();
      })();
      return stopping;
    },
  });
  return sim;
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
