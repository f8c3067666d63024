import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../net/free-port.js';

/** Debian's haproxy (.ci/run installs it). */
export const HAPROXY_BIN = '/usr/sbin/haproxy';

/** A TCP load balancer of our own on 127.0.0.1 in front of the given ports; stopped by its PID. */
export interface TestHaproxy {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/**
 * HAProxy in TCP mode, as the README's cluster section shows it: `balance
 * first` (every connection to the first healthy node, so tests know where a
 * device lands), health checks every 300 ms, and a failed connect sent to
 * another node.
 */
export async function startHaproxy(backendPorts: number[]): Promise<TestHaproxy> {
  const port = await freePort();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-haproxy-'));
  const cfg = path.join(dir, 'haproxy.cfg');
  await fs.writeFile(
    cfg,
    [
      'global',
      '  maxconn 2000',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 10m',
      '  timeout server 10m',
      'frontend mqtt',
      `  bind 127.0.0.1:${port}`,
      '  default_backend nodes',
      'backend nodes',
      '  balance first',
      '  option redispatch',
      '  retries 2',
      ...backendPorts.map((p, i) => `  server n${i + 1} 127.0.0.1:${p} check inter 300 fall 1 rise 1`),
      '',
    ].join('\n'),
  );
  const proc: ChildProcess = spawn(HAPROXY_BIN, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = once(proc, 'exit');
  // Ready once it accepts on its port.
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited with ${proc.exitCode}: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
