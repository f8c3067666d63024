import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
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
  stop(): Promise<void>;
}

export async function rssOf(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return Number(kb ?? 0) * 1024;
}

/** The Kernex broker alone (authentication off), for like-for-like rows. */
export async function startKernexBroker(): Promise<BrokerTarget> {
  const script = fileURLToPath(new URL('./broker-process.js', import.meta.url));
  const proc: ChildProcess = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
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
