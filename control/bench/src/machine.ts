import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Read from the workspace's node_modules: some packages' `exports` hide package.json from require. */
function version(pkg: string): string {
  try {
    return (JSON.parse(fs.readFileSync(`${ROOT}node_modules/${pkg}/package.json`, 'utf8')) as { version: string }).version;
  } catch {
    return 'n/a';
  }
}

/** The machine and versions a benchmark ran on, for the head of BENCHMARKS.md. */
export function machineFacts(): Record<string, string> {
  let mosquitto = 'not installed';
  try {
    mosquitto = execFileSync('mosquitto', ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!;
  } catch (err) {
    const out = (err as { stdout?: string }).stdout;
    if (out) mosquitto = out.split('\n')[0]!.trim();
  }
  return {
    cpu: `${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    aedes: version('aedes'),
    mqtt: version('mqtt'),
    fastify: version('fastify'),
    postgres: version('postgres'),
    mosquitto,
  };
}
