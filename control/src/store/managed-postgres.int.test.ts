import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StartupError } from '../errors.js';
import { startDebianPostgres, type DebianPostgres } from '../test-support/debian-postgres.js';
import { runCli } from '../test-support/run-cli.js';
import { spawnServer } from '../test-support/spawn-server.js';
import { connectDatabase } from './database.js';

const log = pino({ level: 'silent' });

/** Starts `kernex server` on `url` and answers its exit or its readiness, then stops it. */
async function startOnce(url: string, dataDir: string): Promise<{ ready: boolean; code: number | null; stderr: string }> {
  const server = spawnServer({ DATABASE_URL: url, KERNEX_DATA_DIR: dataDir, KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0', KERNEX_ADMIN_KEY: 'kx_managed_pg_test_key' });
  const ready = await server.ready.then(() => true, () => false);
  if (ready) server.proc.kill('SIGTERM');
  const { code } = await server.exited;
  return { ready, code, stderr: server.stderr };
}

/**
 * DESIGN §10 against Debian's PostgreSQL (15 or later), which (like managed services of that version)
 * no longer lets PUBLIC create in schema public, with TLS on and plain TCP refused.
 */
describe('managed PostgreSQL (Debian PostgreSQL 15+, TLS only)', () => {
  let pg: DebianPostgres;
  let dir: string;

  beforeAll(async () => {
    pg = await startDebianPostgres({ ssl: true });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-managed-pg-'));
    await pg.admin('postgres', async (sql) => {
      await sql.unsafe(`create role owner_role login password 'owner'`);
      await sql.unsafe(`create role app login password 'app'`);
      await sql.unsafe('create database kernex owner owner_role');
      await sql.unsafe('create database restored owner owner_role');
    });
    // What a managed service's admin hands the application: data privileges only, now and for tables made later.
    await pg.admin('kernex', async (sql) => {
      await sql.unsafe('revoke create on schema public from public');
      await sql.unsafe('grant usage on schema public to app');
      await sql.unsafe('alter default privileges for role owner_role in schema public grant select, insert, update, delete on tables to app');
      await sql.unsafe('alter default privileges for role owner_role in schema public grant usage, select on sequences to app');
    });
  });
  afterAll(async () => {
    await pg?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('connects with sslmode=verify-full and sslrootcert, and with sslmode=require, over TLS', async () => {
    for (const query of [`sslmode=verify-full&sslrootcert=${pg.caFile}`, 'sslmode=require']) {
      const sql = await connectDatabase(pg.url('postgres', 'postgres', 'postgres', query), log);
      try {
        const [row] = await sql<{ ssl: boolean }[]>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`;
        expect(row?.ssl, query).toBe(true);
      } finally {
        await sql.end();
      }
    }
  });

  it('refuses a server certificate the sslrootcert did not sign, and sslmode=disable reaches no TLS-only server', async () => {
    const otherCa = path.join(dir, 'other-ca.crt');
    const { ensureAutoTls } = await import('../tls/auto-ca.js');
    await fs.copyFile((await ensureAutoTls(path.join(dir, 'other'), ['127.0.0.1'])).files.caCert, otherCa);
    await expect(connectDatabase(pg.url('postgres', 'postgres', 'postgres', `sslmode=verify-full&sslrootcert=${otherCa}`), log)).rejects.toThrow(StartupError);
    // pg_hba refuses plain TCP: "no pg_hba.conf entry for host ..., no encryption".
    await expect(connectDatabase(pg.url('postgres', 'postgres', 'postgres', 'sslmode=disable'), log)).rejects.toMatchObject({ cause: { message: expect.stringContaining('no encryption') } });
  });

  it("stops a server whose role may not create tables with one line naming the GRANT", async () => {
    const res = await startOnce(pg.url('kernex', 'app', 'app'), path.join(dir, 'no-grant'));
    expect(res.ready).toBe(false);
    expect(res.code).toBe(1);
    const lines = res.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('GRANT CREATE ON SCHEMA public TO app');
    expect(lines[0]).toContain("as 'owner_role'");
  });

  it('kernex migrate with the owner\'s URL lets the server run with data privileges only', async () => {
    const migrate = await runCli(['migrate'], { DATABASE_URL: pg.url('kernex', 'owner_role', 'owner'), KERNEX_DATA_DIR: path.join(dir, 'migrate') });
    expect(migrate.stderr).toBe('');
    expect(migrate.code).toBe(0);
    const again = await runCli(['migrate'], { DATABASE_URL: pg.url('kernex', 'owner_role', 'owner'), KERNEX_DATA_DIR: path.join(dir, 'migrate') });
    expect(again.stdout).toContain('no pending migrations');
    const res = await startOnce(pg.url('kernex', 'app', 'app'), path.join(dir, 'app'));
    expect(res.ready, res.stderr).toBe(true);
    expect(res.code).toBe(0);
  });

  it('backs up as the data-only role and restores into an empty database, refusing a non-empty one', async () => {
    const archive = path.join(dir, 'external.backup');
    const backup = await runCli(['backup', '--out', archive], { DATABASE_URL: pg.url('kernex', 'app', 'app'), KERNEX_DATA_DIR: path.join(dir, 'app') });
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    const busy = await runCli(['restore', archive], { DATABASE_URL: pg.url('kernex', 'owner_role', 'owner'), KERNEX_DATA_DIR: path.join(dir, 'busy-target') });
    expect(busy.code).toBe(1);
    expect(busy.stderr.trim().split('\n')).toHaveLength(1);
    expect(busy.stderr).toContain('not empty');
    const restore = await runCli(['restore', archive], { DATABASE_URL: pg.url('restored', 'owner_role', 'owner'), KERNEX_DATA_DIR: path.join(dir, 'restored') });
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);
    const keys = async (db: string): Promise<string[]> =>
      pg.admin(db, async (sql) => (await sql<{ id: string }[]>`select id::text from api_keys order by id`).map((r) => r.id));
    expect(await keys('restored')).toEqual(await keys('kernex'));
    expect(await keys('restored')).toHaveLength(1);
    const res = await startOnce(pg.url('restored', 'owner_role', 'owner'), path.join(dir, 'restored'));
    expect(res.ready).toBe(true);
  });
});
