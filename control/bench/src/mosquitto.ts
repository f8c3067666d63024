import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '@kernex/control/net/free-port';

/** A Mosquitto 2 broker (Debian's package) on loopback, the reference for broker-level figures. */
export interface MosquittoProcess {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

function connectable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Starts `mosquitto` with authentication off (like-for-like rows), or throws if it is not installed. */
export async function startMosquitto(): Promise<MosquittoProcess> {
  const port = await freePort();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  await fs.writeFile(
    conf,
    [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_type error', 'max_connections -1', 'max_queued_messages 1000', ''].join('\n'),
  );
  const proc: ChildProcess = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  for (let i = 0; i < 100 && !(await connectable(port)); i++) {
    if (proc.exitCode !== null) throw new Error('mosquitto exited at start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    pid: proc.pid!,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
