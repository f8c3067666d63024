import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { freePort } from '../net/free-port.js';
import { ensureAutoTls } from '../tls/auto-ca.js';

const run = promisify(execFile);

/**
 * The newest of Debian's PostgreSQL servers (package `postgresql`: 15 on bookworm), 15 or
 * later: from 15 on, PUBLIC may not create in schema public, as on managed services.
 */
async function debianPgBin(): Promise<string> {
  const versions = (await fs.readdir('/usr/lib/postgresql').catch(() => [] as string[])).map(Number).filter((v) => v >= 15).sort((a, b) => b - a);
  if (versions.length === 0) throw new Error('no Debian PostgreSQL 15 or later in /usr/lib/postgresql: apt-get install postgresql');
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

/** A throwaway PostgreSQL (15 or later) cluster in a temp directory, started by the test. */
export interface DebianPostgres {
  port: number;
  /** Superuser URL (user postgres, password `postgres`) of database `db`. */
  url(db?: string, user?: string, password?: string, query?: string): string;
  /** The CA that signed the server certificate (with `ssl: true`). */
  caFile: string | undefined;
  /** Runs SQL as the superuser on database `db`. */
  admin<T>(db: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

/**
 * initdb + pg_ctl of Debian's PostgreSQL (it refuses to run as root, so as user
 * `postgres` then). With `ssl`, the server speaks TLS with a certificate for
 * 127.0.0.1/localhost signed by a fresh CA, and refuses connections without TLS.
 */
export async function startDebianPostgres(opts: { ssl?: boolean } = {}): Promise<DebianPostgres> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-debian-pg-'));
  await fs.chmod(dir, 0o755);
  const bin = await debianPgBin();
  const asRoot = process.getuid?.() === 0;
  const pg = async (tool: string, args: string[]): Promise<void> => {
    const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]] : [path.join(bin, tool), args];
    await run(cmd as string, argv as string[], { cwd: dir });
  };
  const chown = async (p: string): Promise<void> => {
    if (asRoot) await run('chown', ['-R', 'postgres:postgres', p]);
  };
  const data = path.join(dir, 'data');
  const pwfile = path.join(dir, 'pw');
  await fs.writeFile(pwfile, 'postgres\n');
  await chown(dir);
  await pg('initdb', ['-D', data, '-U', 'postgres', '--pwfile', pwfile, '-A', 'scram-sha-256', '--no-sync']);

  let caFile: string | undefined;
  const conf = ['listen_addresses = \'127.0.0.1\'', `unix_socket_directories = '${dir}'`, 'fsync = off'];
  if (opts.ssl) {
    const tls = await ensureAutoTls(path.join(dir, 'certs'), ['127.0.0.1', 'localhost']);
    caFile = tls.files.caCert;
    await fs.chmod(path.join(dir, 'certs'), 0o755);
    await fs.chmod(tls.files.dir, 0o755);
    await chown(path.join(dir, 'certs'));
    conf.push('ssl = on', `ssl_cert_file = '${tls.files.cert}'`, `ssl_key_file = '${tls.files.key}'`);
    await fs.writeFile(path.join(data, 'pg_hba.conf'), 'local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 reject\n');
  } else {
    await fs.writeFile(path.join(data, 'pg_hba.conf'), 'local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n');
  }
  await fs.appendFile(path.join(data, 'postgresql.conf'), conf.join('\n') + '\n');
  await chown(data);
  const port = await freePort();
  await pg('pg_ctl', ['-D', data, '-o', `-p ${port}`, '-l', path.join(dir, 'log'), '-w', 'start']);

  const url = (db = 'postgres', user = 'postgres', password = 'postgres', query = opts.ssl ? `sslmode=verify-full&sslrootcert=${caFile}` : ''): string =>
    `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}${query ? `?${query}` : ''}`;
  return {
    port,
    url,
    caFile,
    async admin(db, fn) {
      const sql = postgres(`postgres://postgres:postgres@127.0.0.1:${port}/${db}`, {
        max: 1,
        onnotice: () => {},
        ssl: opts.ssl ? { ca: await fs.readFile(caFile!), host: '127.0.0.1' } : false,
      });
      try {
        return await fn(sql);
      } finally {
        await sql.end();
      }
    },
    async stop() {
      await pg('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => {});
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
