import fs from 'node:fs/promises';
import type { Stats } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServer } from './test-support/spawn-server.js';

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-srv-'));
  await fs.chmod(dir, 0o711);
  return dir;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('kernex server with the embedded PostgreSQL', () => {
  let dataDir: string;
  let pgVersion: Stats | undefined;
  beforeAll(async () => {
    dataDir = await tempDir();
  });
  afterAll(async () => {
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('boots on port 0, answers /healthz, /readyz and /metrics, accepts MQTT connections, and exits 0 on SIGTERM', async () => {
    const server = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
    const { httpPort, mqttPort } = await server.ready;
    const base = `http://127.0.0.1:${httpPort}`;

    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { database: true, broker: true } });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^kernex_devices_connected 0$/m);
    expect(metrics).toMatch(/^process_cpu_seconds_total /m);
    expect(await canConnect(mqttPort)).toBe(true);
    // The embedded PostgreSQL was made in the data directory (README: KERNEX_DATA_DIR/pg).
    pgVersion = await fs.stat(path.join(dataDir, 'pg', 'PG_VERSION'));
    expect(server.stderr).toMatch(/^kernex server: created the first admin API key \(shown once, keep it\): kx_\S{43}$/m);

    server.proc.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    // Stopped in order: the embedded PostgreSQL is gone with it.
    await expect(fs.stat(path.join(dataDir, 'pg', 'postmaster.pid'))).rejects.toThrow(/ENOENT/);
  });

  it('reuses the database on a second start in the same data directory', async () => {
    const server = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
    await server.ready;
    // The same cluster, not made again.
    const again = await fs.stat(path.join(dataDir, 'pg', 'PG_VERSION'));
    expect([again.ino, again.mtimeMs]).toEqual([pgVersion!.ino, pgVersion!.mtimeMs]);
    expect(server.stderr).not.toContain('created the first admin API key');
    server.proc.kill('SIGINT');
    expect((await server.exited).code).toBe(0);
  });
});

describe('kernex server refuses bad start conditions with one clear line', () => {
  it('names a port already in use', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const busy = (blocker.address() as net.AddressInfo).port;
    const dataDir = await tempDir();
    try {
      const server = spawnServer({ KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: String(busy) });
      expect((await server.exited).code).toBe(1);
      expect(server.stderr.trim()).toBe(`kernex server: KERNEX_MQTT_PORT ${busy} is already in use`);
    } finally {
      blocker.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });

  it('names an unreachable DATABASE_URL', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const dataDir = await tempDir();
    try {
      const server = spawnServer({
        KERNEX_DATA_DIR: dataDir,
        DATABASE_URL: `postgres://kernex:secret@127.0.0.1:${port}/kernex`,
        KERNEX_HTTP_PORT: '0',
        KERNEX_MQTT_PORT: '0',
      });
      expect((await server.exited).code).toBe(1);
      expect(server.stderr.trim()).toBe(`kernex server: cannot reach the database at 127.0.0.1:${port}/kernex: ECONNREFUSED`);
      expect(server.stderr).not.toContain('secret');
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });

  it('names an unwritable data directory', async () => {
    const parent = await tempDir();
    const file = path.join(parent, 'a-file');
    await fs.writeFile(file, '');
    try {
      const server = spawnServer({ KERNEX_DATA_DIR: path.join(file, 'data'), KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' });
      expect((await server.exited).code).toBe(1);
      expect(server.stderr.trim()).toBe(`kernex server: KERNEX_DATA_DIR ${path.join(file, 'data')} is not writable (ENOTDIR)`);
    } finally {
      await fs.rm(parent, { recursive: true, force: true });
    }
  });

  it('names each bad configuration value', async () => {
    const server = spawnServer({ KERNEX_HTTP_PORT: 'http', LOG_LEVEL: 'loud' });
    expect((await server.exited).code).toBe(1);
    expect(server.stderr.trim().split('\n')).toEqual([
      "kernex server: KERNEX_HTTP_PORT must be a port number between 0 and 65535, got 'http'",
      "kernex server: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got 'loud'",
    ]);
  });
});
