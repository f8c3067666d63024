import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { freePort } from '../net/free-port.js';

/** Debian's redis-server (.ci/run installs it). */
export const REDIS_BIN = '/usr/bin/redis-server';

/** A redis-server of our own on 127.0.0.1, no persistence; stopped by its PID. */
export interface TestRedis {
  port: number;
  url: string;
  /** Stops it (SIGTERM to our PID) and waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop()); resolves once it accepts connections. */
  start(): Promise<void>;
}

function run(port: number): Promise<ChildProcess> {
  const proc = spawn(REDIS_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('Ready to accept connections')) resolve(proc);
    });
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
  });
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined = await run(port);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      const p = proc;
      proc = undefined;
      if (!p || p.exitCode !== null) return;
      const exited = once(p, 'exit');
      p.kill('SIGTERM');
      await exited;
    },
    async start() {
      if (proc) return;
      proc = await run(port);
    },
  };
}
