import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { processCpuSeconds } from './proc-stat.js';

/** A `kernex server` process for benchmarks: embedded PostgreSQL in a temporary data directory. */
export interface KernexProcess {
  httpUrl: string;
  mqttPort: number;
  pid: number;
  /** The server's KERNEX_DATA_DIR (blobs live under `bundles/`). */
  dataDir: string;
  adminHeaders: Record<string, string>;
  stop(): Promise<void>;
  /** SIGKILL to its PID, as a power cut, then removes its data directory. */
  kill(): Promise<void>;
}

/** Every simulated device calls from 127.0.0.1: the per-address API limits would measure themselves. */
const BENCH_LIMITS = { KERNEX_REGISTER_RATE_LIMIT_PER_MIN: '1000000', KERNEX_RATE_LIMIT_PER_MIN: '1000000' };

const KERNEX_BIN = fileURLToPath(new URL('../../bin/kernex.js', import.meta.url));

/** `nodeArgs` go before the script, after BENCH_SERVER_NODE_ARGS (e.g. the memory probe's `--import`). */
export async function startKernexServer(env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<KernexProcess> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-bench-'));
  await fs.chmod(dir, 0o711);
  const adminKey = env.KERNEX_ADMIN_KEY ?? `kx_bench_${randomBytes(16).toString('hex')}`;
  const { DATABASE_URL: _ignored, ...inherited } = process.env;
  // e.g. BENCH_SERVER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the server (NODE_OPTIONS refuses --cpu-prof).
  const profileArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const proc = spawn(process.execPath, [...profileArgs, ...nodeArgs, KERNEX_BIN, 'server'], {
    env: { ...inherited, KERNEX_DATA_DIR: dir, KERNEX_HOST: '127.0.0.1', KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', KERNEX_ADMIN_KEY: adminKey, LOG_LEVEL: 'info', ...BENCH_LIMITS, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const ready = await new Promise<{ httpPort: number; mqttPort: number }>((resolve, reject) => {
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; httpPort: number; mqttPort: number };
        if (entry.msg === 'kernex server ready') resolve(entry);
      } catch {
        // not a log line
      }
    });
    void exited.then(() => reject(new Error('kernex server exited before it was ready')));
  });
  return {
    httpUrl: `http://127.0.0.1:${ready.httpPort}`,
    mqttPort: ready.mqttPort,
    pid: proc.pid!,
    dataDir: dir,
    adminHeaders: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
      await fs.rm(dir, { recursive: true, force: true });
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** A counter's value from the server's `/metrics` (sum over its labels). */
export async function metricValue(httpUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** A metric's values from the server's `/metrics`, summed by one label's value. */
export async function metricByLabel(httpUrl: string, name: string, label: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  const re = new RegExp(`${label}="([^"]*)"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const key = re.exec(line)?.[1] ?? '';
    out[key] = (out[key] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

/** utime + stime of a process, seconds (/proc/{pid}/stat, parsed by proc-stat.ts). */
export async function cpuSeconds(pid: number): Promise<number> {
  return processCpuSeconds(pid);
}
