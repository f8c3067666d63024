import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort } from '../net/free-port.js';
import { startTcpProxy } from '../net/tcp-proxy.js';
import { migrate } from '../store/migrate.js';
import { runCli } from '../test-support/run-cli.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { connectDevice } from '../test-support/mqtt.js';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-life-'));
  await fs.chmod(dir, 0o711);
  return dir;
}

const adminKey = (): string => `kx_test_${randomBytes(16).toString('hex')}`;

/** The pid in PostgreSQL's postmaster.pid, or undefined when there is none. */
async function postmasterPid(dataDir: string): Promise<number | undefined> {
  const text = await fs.readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : Number(text.split('\n')[0]);
}

/** The process group of `pid` (/proc/PID/stat field 5). */
async function processGroup(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A running `kernex server` with one accepted device connected over MQTT. */
interface ServerWithDevice {
  server: ServerProcess;
  base: string;
  headers: Record<string, string>;
  httpPort: number;
  mqttPort: number;
  deviceId: string;
  client: MqttClient;
  online(): Promise<boolean>;
  stop(): Promise<void>;
}

async function serverWithDevice(env: Record<string, string>, opts: { detached?: boolean } = {}): Promise<ServerWithDevice> {
  const key = adminKey();
  const server = spawnServer({ KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', KERNEX_ADMIN_KEY: key, ...env }, ['server'], opts);
  const { httpPort, mqttPort } = await server.ready;
  const base = `http://127.0.0.1:${httpPort}`;
  const headers = { authorization: `Bearer ${key}` };
  const device = await makeDevice();
  const reg = await register(base, device, { enrollmentToken: await enrollmentToken(base, headers, 1) });
  expect(reg.status).toBe(201);
  const client = await connectDevice(`mqtt://127.0.0.1:${mqttPort}`, device);
  const online = async (): Promise<boolean> => (await api('GET', `${base}/api/v1/devices/${device.id}`, headers)).body.online as boolean;
  // Presence is written in batches: wait until the API shows it (vi.waitFor also works in hooks).
  await vi.waitFor(
    async () => {
      if (!(await online())) throw new Error(`device ${device.id} not online yet`);
    },
    { timeout: 15_000, interval: 50 },
  );
  return {
    server,
    base,
    headers,
    httpPort,
    mqttPort,
    deviceId: device.id,
    client,
    online,
    async stop() {
      await client.endAsync(true).catch(() => {});
      if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGTERM');
      await server.exited;
    },
  };
}

describe('a second kernex server beside a running one', () => {
  let dataDir: string;
  let a: ServerWithDevice;
  let pgPid: number;

  beforeAll(async () => {
    dataDir = await tempDir();
    a = await serverWithDevice({ KERNEX_DATA_DIR: dataDir });
    pgPid = (await postmasterPid(dataDir))!;
    expect(alive(pgPid)).toBe(true);
  });
  afterAll(async () => {
    await a?.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const aIsUntouched = async (): Promise<void> => {
    expect((await fetch(`${a.base}/readyz`)).status).toBe(200);
    expect(await postmasterPid(dataDir)).toBe(pgPid);
    expect(alive(pgPid)).toBe(true);
    expect(await a.online()).toBe(true);
    // The first server still serves: a write through its API lands in its database.
    expect((await api('PATCH', `${a.base}/api/v1/devices/${a.deviceId}`, a.headers, { name: 'still-here' })).status).toBe(200);
  };

  it('refuses with one line and exit 1 on the same data directory, leaving the running server, its PostgreSQL and its devices as they were', async () => {
    const b = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
    expect((await b.exited).code).toBe(1);
    expect(b.stderr).toBe(
      `kernex server: KERNEX_DATA_DIR ${dataDir} is in use by another kernex server (pid ${a.server.proc.pid}); stop it first, or give this one another KERNEX_DATA_DIR\n`,
    );
    await aIsUntouched();
  });

  it('refuses with one line and exit 1 on the same ports with another data directory, before it creates anything there', async () => {
    const other = await tempDir();
    try {
      const b = spawnServer({ KERNEX_DATA_DIR: other, KERNEX_HTTP_PORT: String(a.httpPort), KERNEX_MQTT_PORT: String(a.mqttPort) });
      expect((await b.exited).code).toBe(1);
      expect(b.stderr).toBe(`kernex server: KERNEX_HTTP_PORT ${a.httpPort} is already in use\n`);
      expect(await fs.readdir(other)).toEqual([]);
      await aIsUntouched();
    } finally {
      await fs.rm(other, { recursive: true, force: true });
    }
  });
});

describe('two kernex servers on one DATABASE_URL', () => {
  let db: TestDatabase;
  let dirs: string[];
  let a: ServerWithDevice;

  beforeAll(async () => {
    db = await createTestDatabase();
    dirs = [await tempDir(), await tempDir()];
    a = await serverWithDevice({ DATABASE_URL: db.url, KERNEX_DATA_DIR: dirs[0]! });
  });
  afterAll(async () => {
    await a?.stop();
    await db?.drop();
    for (const d of dirs ?? []) await fs.rm(d, { recursive: true, force: true });
  });

  it("a second server starting on the same database leaves the first one's devices online", async () => {
    const b = spawnServer({ DATABASE_URL: db.url, KERNEX_DATA_DIR: dirs[1]!, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
    const { httpPort } = await b.ready;
    expect(await a.online()).toBe(true);
    const viaB = await api('GET', `http://127.0.0.1:${httpPort}/api/v1/devices/${a.deviceId}`, a.headers);
    expect(viaB.body.online).toBe(true);
    b.proc.kill('SIGTERM');
    expect((await b.exited).code).toBe(0);
    expect(await a.online()).toBe(true);
  });
});

describe('a server killed with SIGKILL', () => {
  it('leaves a lock the next start on its data directory takes over, stopping the PostgreSQL it left running', async () => {
    const dataDir = await tempDir();
    try {
      const first = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
      await first.ready;
      const orphan = (await postmasterPid(dataDir))!;
      first.proc.kill('SIGKILL');
      await first.exited;
      expect(alive(orphan)).toBe(true); // its own process group: the kill did not reach it

      const second = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
      const { httpPort } = await second.ready;
      expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(200);
      expect(alive(orphan)).toBe(false);
      const pg = await postmasterPid(dataDir);
      expect(pg).not.toBe(orphan);
      second.proc.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);
      expect(alive(pg!)).toBe(false);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a server whose database connection was lost', () => {
  it('marks itself live again, so a server starting on the same database still leaves its devices online', async () => {
    const db = await createTestDatabase();
    const target = new URL(db.url);
    const proxy = await startTcpProxy(Number(target.port));
    target.port = String(proxy.port);
    const dirs = [await tempDir(), await tempDir()];
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const holders = async (): Promise<number[]> =>
      (await sql<{ pid: number }[]>`select pid from pg_locks where locktype = 'advisory' and mode = 'ShareLock' and granted
          and database = (select oid from pg_database where datname = current_database())`).map((r) => r.pid);
    let a: ServerWithDevice | undefined;
    try {
      a = await serverWithDevice({ DATABASE_URL: target.toString(), KERNEX_DATA_DIR: dirs[0]! });
      const before = await holders();
      expect(before).toHaveLength(1);
      await proxy.cut();
      await proxy.restore();
      // Its old session is gone with the connection; a new one holds the mark.
      await expect.poll(async () => (await holders()).filter((pid) => !before.includes(pid)).length).toBe(1);

      const b = spawnServer({ DATABASE_URL: db.url, KERNEX_DATA_DIR: dirs[1]!, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
      await b.ready;
      expect(await a.online()).toBe(true);
      b.proc.kill('SIGTERM');
      expect((await b.exited).code).toBe(0);
    } finally {
      await a?.stop();
      await sql.end();
      await proxy.close();
      await db.drop();
      for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
    }
  });
});

describe('Ctrl-C on the terminal (SIGINT to the whole process group)', () => {
  it('exits 0 after stopping its embedded PostgreSQL in order, leaving no postgres behind', async () => {
    const dataDir = await tempDir();
    try {
      const s = await serverWithDevice({ KERNEX_DATA_DIR: dataDir }, { detached: true });
      const pgPid = (await postmasterPid(dataDir))!;
      expect(alive(pgPid)).toBe(true);
      // The terminal's signal reaches the server's group only: PostgreSQL leads a group of its own.
      expect(await processGroup(s.server.proc.pid!)).toBe(s.server.proc.pid);
      expect(await processGroup(pgPid)).not.toBe(s.server.proc.pid);

      process.kill(-s.server.proc.pid!, 'SIGINT');
      expect(await s.server.exited).toEqual({ code: 0, signal: null });
      expect(alive(pgPid)).toBe(false);
      expect(await postmasterPid(dataDir)).toBeUndefined(); // removed by PostgreSQL's own orderly shutdown
      await s.client.endAsync(true);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('start-up errors', () => {
  it('print exactly one line on stderr and exit 1, with the stack only at debug', async () => {
    const parent = await tempDir();
    const file = path.join(parent, 'a-file');
    await fs.writeFile(file, '');
    const dataDir = path.join(file, 'data');
    try {
      const server = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
      expect((await server.exited).code).toBe(1);
      expect(server.stderr).toBe(`kernex server: KERNEX_DATA_DIR ${dataDir} is not writable (ENOTDIR)\n`);
      expect(JSON.stringify(server.logs)).not.toMatch(/\\n\s+at /); // no stack on stdout either

      const debug = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', LOG_LEVEL: 'debug' });
      expect((await debug.exited).code).toBe(1);
      expect(debug.stderr).toBe(`kernex server: KERNEX_DATA_DIR ${dataDir} is not writable (ENOTDIR)\n`);
      expect(debug.logs.some((l) => /\n\s+at /.test(String((l.err as { stack?: string } | undefined)?.stack)))).toBe(true);
    } finally {
      await fs.rm(parent, { recursive: true, force: true });
    }
  });

  it('a migration record that does not match its file stops the start with one line', async () => {
    const db = await createTestDatabase();
    const dataDir = await tempDir();
    try {
      const first = spawnServer({ DATABASE_URL: db.url, KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', KERNEX_ADMIN_KEY: adminKey() });
      await first.ready;
      first.proc.kill('SIGTERM');
      expect((await first.exited).code).toBe(0);
      const sql = postgres(db.url, { max: 1, onnotice: () => {} });
      await sql`update kernex_migrations set name = 'reserve-number' where id = 7`;
      await sql.end();

      const second = spawnServer({ DATABASE_URL: db.url, KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
      expect((await second.exited).code).toBe(1);
      expect(second.stderr).toBe(
        'kernex server: migration 007_reserve-number.sql is recorded in the database but the file of that number is 007_create-bundles.sql\n',
      );
    } finally {
      await db.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('readiness', () => {
  it('/healthz and /readyz do not answer 200 while the KERNEX_ADMIN_KEY is not installed, and the first 200 is followed by a successful call with it', async () => {
    const dataDir = await tempDir();
    const db = await createTestDatabase();
    const sql = postgres(db.url, { max: 2, onnotice: () => {} });
    const key = adminKey();
    // A fixed port, so the probes can be polled from the moment the process starts, before any log line.
    const port = await freePort();
    let server: ServerProcess | undefined;
    let release = (): void => {};
    try {
      await migrate(sql, pino({ level: 'silent' }));
      // Hold back the bootstrap key's insert (reads still pass), so the start is caught right at that step.
      const released = new Promise<void>((resolve) => (release = resolve));
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const holding = sql.begin(async (tx) => {
        await tx`lock table api_keys in share row exclusive mode`;
        locked();
        await released;
      });
      await isLocked;
      server = spawnServer({ DATABASE_URL: db.url, KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: String(port), KERNEX_MQTT_PORT: '0', KERNEX_ADMIN_KEY: key });
      await expect
        .poll(async () => (await sql`select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%insert into api_keys%'`).length)
        .toBe(1);
      for (const probe of ['/healthz', '/readyz']) {
        const res = await fetch(`http://127.0.0.1:${port}${probe}`).catch(() => undefined);
        await res?.body?.cancel();
        expect(res?.status === 200, `${probe} answered 200 before the admin key was installed`).toBe(false);
      }
      release();
      await holding;

      for (;;) {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        await res?.body?.cancel();
        if (res?.status === 200) break;
      }
      const first = await fetch(`http://127.0.0.1:${port}/api/v1/devices`, { headers: { authorization: `Bearer ${key}` } });
      expect(first.status).toBe(200);
    } finally {
      release();
      server?.proc.kill('SIGTERM');
      await server?.exited;
      await sql.end();
      await db.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the ready line', () => {
  it('says where the API is and prints an export line that works as printed, with the key made on first start', async () => {
    const dataDir = await tempDir();
    const server = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
    try {
      const { httpPort } = await server.ready;
      const url = `http://127.0.0.1:${httpPort}`;
      await expect.poll(() => server.stderr).toMatch(/^kernex server: or save them once: .*$/m);
      expect(server.stderr).toContain(`kernex server: ready; API at ${url}, console at ${url}/console/\n`);
      expect((await fetch(`${url}/console/`)).status).toBe(200);
      const line = /export (KERNEX_URL=\S+) (KERNEX_API_KEY=\S+);/.exec(server.stderr);
      expect(line?.[1]).toBe(`KERNEX_URL=${url}`);
      const env = Object.fromEntries([line![1]!, line![2]!].map((kv) => kv.split(/=(.*)/s).slice(0, 2)));
      expect(env.KERNEX_API_KEY).toMatch(/^kx_\S{43}$/);
      const ls = await runCli(['devices', 'ls'], env);
      expect(ls.code).toBe(0);

      // The login line, as printed, saves URL and key where every command finds them.
      const configHome = await tempDir();
      const login = /npx kernex (login .*)$/m.exec(server.stderr)![1]!.split(' ');
      expect(await runCli(login, { XDG_CONFIG_HOME: configHome })).toMatchObject({ code: 0 });
      const saved = await fs.stat(path.join(configHome, 'kernex', 'config.json'));
      expect(saved.mode & 0o777).toBe(0o600);
      expect(await runCli(['devices', 'ls'], { XDG_CONFIG_HOME: configHome })).toMatchObject({ code: 0 });
      expect(await runCli(['logout'], { XDG_CONFIG_HOME: configHome })).toMatchObject({ code: 0 });
      expect((await runCli(['devices', 'ls'], { XDG_CONFIG_HOME: configHome })).code).toBe(1);
      const wrong = await runCli(['login', '--url', url, '--api-key', 'kx_wrong'], { XDG_CONFIG_HOME: configHome });
      expect(wrong.code).toBe(1);
      expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
      await fs.rm(configHome, { recursive: true, force: true });
    } finally {
      server.proc.kill('SIGTERM');
      await server.exited;
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
