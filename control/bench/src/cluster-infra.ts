import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@kernex/control/net/free-port';
import postgres from 'postgres';

const run = promisify(execFile);

/**
 * Debian's redis-server and PostgreSQL for the cluster benchmark, started on
 * free loopback ports and stopped by PID, as the cluster tests start theirs
 * (control/src/test-support/redis.ts and debian-postgres.ts, which are not
 * part of the build the benchmarks run from).
 */
export interface BenchRedis {
  url: string;
  pid: number;
  /** Commands Redis has processed since it started (INFO stats total_commands_processed). */
  commandsProcessed(): Promise<number>;
  stop(): Promise<void>;
}

export async function startBenchRedis(): Promise<BenchRedis> {
  const port = await freePort();
  const proc: ChildProcess = spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(proc, 'exit');
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('Ready to accept connections')) resolve();
    });
    proc.once('error', reject);
    void exited.then(([code]) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
  });
  proc.stdout!.resume();
  proc.stderr!.resume();
  const { Redis } = await import('ioredis');
  const info = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  await info.connect();
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: proc.pid!,
    async commandsProcessed() {
      const text = await info.info('stats');
      const m = /total_commands_processed:(\d+)/.exec(text);
      if (!m) throw new Error('redis INFO stats has no total_commands_processed');
      return Number(m[1]);
    },
    async stop() {
      info.disconnect();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** A throwaway Debian PostgreSQL (its newest in /usr/lib/postgresql), fsync off. */
export interface BenchPostgres {
  /** The postmaster's PID (backends are its children). */
  pid: number;
  /** Creates a database and answers its URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startBenchPostgres(): Promise<BenchPostgres> {
  const versions = (await fs.readdir('/usr/lib/postgresql').catch(() => [] as string[])).map(Number).filter((v) => v >= 15).sort((a, b) => b - a);
  if (versions.length === 0) throw new Error('no Debian PostgreSQL 15 or later in /usr/lib/postgresql: apt-get install postgresql');
  const bin = `/usr/lib/postgresql/${versions[0]}/bin`;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-bench-pg-'));
  await fs.chmod(dir, 0o755);
  const asRoot = process.getuid?.() === 0;
  // PostgreSQL refuses to run as root: as user postgres then.
  const pg = async (tool: string, args: string[]): Promise<void> => {
    const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]] : [path.join(bin, tool), args];
    await run(cmd as string, argv as string[], { cwd: dir });
  };
  const data = path.join(dir, 'data');
  await fs.writeFile(path.join(dir, 'pw'), 'postgres\n');
  if (asRoot) await run('chown', ['-R', 'postgres:postgres', dir]);
  await pg('initdb', ['-D', data, '-U', 'postgres', '--pwfile', path.join(dir, 'pw'), '-A', 'scram-sha-256', '--no-sync']);
  await fs.appendFile(path.join(data, 'postgresql.conf'), [`listen_addresses = '127.0.0.1'`, `unix_socket_directories = '${dir}'`, 'fsync = off', 'max_connections = 300', ''].join('\n'));
  const port = await freePort();
  await pg('pg_ctl', ['-D', data, '-o', `-p ${port}`, '-l', path.join(dir, 'log'), '-w', 'start']);
  const pid = Number((await fs.readFile(path.join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const url = (db: string): string => `postgres://postgres:postgres@127.0.0.1:${port}/${db}`;
  return {
    pid,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      const sql = postgres(url('postgres'), { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`CREATE DATABASE ${name}`);
      } finally {
        await sql.end();
      }
      return url(name);
    },
    async stop() {
      await pg('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => {});
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
