import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startMosquitto } from './mosquitto.js';

/** A broker under measurement, in its own process so its memory and CPU are its own. */
export interface BrokerTarget {
  name: string;
  url: string;
  pid: number;
  /** Resident memory of the broker process, bytes. */
  rss(): Promise<number>;
  /** Memory after a full garbage collection (a Node.js process with the memory probe); absent for Mosquitto, which frees as it goes. */
  settled?(): Promise<SettledMemory>;
  stop(): Promise<void>;
}

/** A process's memory after a full garbage collection, bytes. */
export interface SettledMemory {
  rss: number;
  /** Live JavaScript heap. */
  heapUsed: number;
}

/**
 * Node arguments and environment that preload `memory-probe.js` into a
 * benchmarked Node.js process, and `settled(pid)` to read that process's
 * memory after a full garbage collection (the probe answers SIGUSR2).
 */
export function memoryProbe(): { nodeArgs: string[]; env: Record<string, string>; settled(pid: number): Promise<SettledMemory> } {
  const file = path.join(os.tmpdir(), `kx-bench-mem-${process.pid}-${randomBytes(6).toString('hex')}.json`);
  return {
    nodeArgs: [`--import=${new URL('./memory-probe.js', import.meta.url).href}`],
    env: { BENCH_MEMORY_PROBE_FILE: file },
    async settled(pid: number): Promise<SettledMemory> {
      await fs.rm(file, { force: true });
      process.kill(pid, 'SIGUSR2');
      for (let i = 0; i < 600; i++) {
        const text = await fs.readFile(file, 'utf8').catch(() => undefined);
        if (text) {
          const usage = JSON.parse(text) as NodeJS.MemoryUsage;
          await fs.rm(file, { force: true });
          return { rss: usage.rss, heapUsed: usage.heapUsed };
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`memory probe of process ${pid} never answered`);
    },
  };
}

export async function rssOf(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return Number(kb ?? 0) * 1024;
}

/** The Kernex broker alone (authentication off), for like-for-like rows. */
export async function startKernexBroker(): Promise<BrokerTarget> {
  const script = fileURLToPath(new URL('./broker-process.js', import.meta.url));
  const probe = memoryProbe();
  const proc: ChildProcess = spawn(process.execPath, [...probe.nodeArgs, script], { env: { ...process.env, ...probe.env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: proc.stdout! }).once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`broker process exited with ${code}`)));
  });
  const { port } = JSON.parse(line) as { port: number };
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    name: 'Kernex broker',
    url: `mqtt://127.0.0.1:${port}`,
    pid: proc.pid!,
    rss: () => rssOf(proc.pid!),
    settled: () => probe.settled(proc.pid!),
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

export async function startMosquittoTarget(): Promise<BrokerTarget> {
  const m = await startMosquitto();
  return { name: 'Mosquitto', url: `mqtt://127.0.0.1:${m.port}`, pid: m.pid, rss: () => rssOf(m.pid), stop: () => m.stop() };
}
