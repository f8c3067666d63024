import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, metricValue, startKernexServer } from './kernex-process.js';
import { rssOf } from './targets.js';

/** Figures of one `kernex sim` fleet run against one `kernex server` process. */
export interface SimFleetRun {
  devices: number;
  /** Seconds from starting the simulator to every device connected (registration included). */
  secondsToAllOnline: number;
  /** Server RSS growth per connected simulated device (PostgreSQL not counted). */
  serverBytesPerDevice: number;
  /** CPU seconds used while the fleet came up, by the server and by the simulator. */
  serverCpuS: number;
  simCpuS: number;
}

/**
 * Runs `kernex sim --devices N` (the real simulator: real keys from its cache,
 * real registration, JWT MQTT sessions, agent default telemetry/keepalive)
 * against a real `kernex server` and waits for the server's
 * `kernex_devices_connected` to reach N. The CPU split says which side limited it.
 */
export async function simFleetRun(devices: number, workers: number, connectRate: number): Promise<SimFleetRun> {
  const server = await startKernexServer();
  const keyCache = path.join(os.homedir(), '.cache', 'kernex', 'sim-keys');
  try {
    const rssBefore = await rssOf(server.pid);
    const serverCpu0 = await cpuSeconds(server.pid);
    const adminKey = server.adminHeaders.authorization!.slice('Bearer '.length);
    const t0 = performance.now();
    const sim = spawn(process.execPath, [fileURLToPath(import.meta.resolve('@kernex/agent/sim-cli')), 'sim', '--devices', String(devices), '--workers', String(workers), '--connect-rate', String(connectRate), '--summary-s', '0', '--key-cache', keyCache, '--json'], {
      env: { ...process.env, KERNEX_URL: server.httpUrl, KERNEX_API_KEY: adminKey },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<void>((r) => sim.once('close', () => r()));
    try {
      let connected = 0;
      while (connected < devices) {
        if (performance.now() - t0 > 900_000) throw new Error(`only ${connected}/${devices} connected after 15 min`);
        await new Promise((r) => setTimeout(r, 250));
        connected = await metricValue(server.httpUrl, 'kernex_devices_connected');
      }
      const secondsToAllOnline = (performance.now() - t0) / 1000;
      return {
        devices,
        secondsToAllOnline,
        serverBytesPerDevice: ((await rssOf(server.pid)) - rssBefore) / devices,
        serverCpuS: (await cpuSeconds(server.pid)) - serverCpu0,
        simCpuS: await cpuSeconds(sim.pid!),
      };
    } finally {
      sim.kill('SIGTERM');
      await exited;
    }
  } finally {
    await server.stop();
  }
}
