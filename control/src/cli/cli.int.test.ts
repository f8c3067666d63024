import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliServer, type CliServer } from '../test-support/cli-server.js';
import { runCli } from '../test-support/run-cli.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

describe('kernex keys and audit, as a subprocess against a real server', () => {
  let cli: CliServer;
  let server: TestServer;
  let configHome: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    cli = await startCliServer();
    ({ server, configHome, env } = cli);
  });
  afterAll(async () => {
    await cli?.stop();
  });

  it('creates, lists and revokes keys with --json', async () => {
    const created = await runCli(['keys', 'create', 'deployer', '--role', 'operator', '--json'], env);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const key = JSON.parse(created.stdout) as { id: string; key: string; role: string };
    expect(key).toMatchObject({ role: 'operator', key: expect.stringMatching(/^kx_/) });

    const listed = await runCli(['keys', 'ls', '--json'], env);
    const items = JSON.parse(listed.stdout) as Array<{ id: string; name: string }>;
    expect(items.map((k) => k.name)).toEqual(['bootstrap (KERNEX_ADMIN_KEY)', 'deployer']);
    expect(listed.stdout).not.toContain(key.key);

    const revoked = await runCli(['--json', 'keys', 'revoke', key.id], env);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ id: key.id, revokedAt: expect.any(String) });
    expect((await runCli(['keys', 'ls'], { ...env, KERNEX_API_KEY: key.key })).stderr).toBe('kernex: invalid or revoked API key (401 KX_UNAUTHORIZED)\n');
  });

  it('prints tables for people, with the secret only at creation', async () => {
    const created = await runCli(['keys', 'create', 'reader'], env);
    expect(created.code).toBe(0);
    const [first, secret] = created.stdout.trim().split('\n');
    expect(first).toMatch(/^Created API key [0-9a-f-]{36} 'reader' \(viewer\)\. The key is shown only now:$/);
    expect(secret).toMatch(/^kx_[A-Za-z0-9_-]{43}$/);
    const table = (await runCli(['keys', 'ls'], env)).stdout.split('\n');
    expect(table[0]).toMatch(/^ID\s+NAME\s+ROLE\s+PREFIX\s+CREATED\s+LAST USED\s+REVOKED$/);
    expect(table.some((l) => /\breader\s+viewer\s+kx_/.test(l))).toBe(true);
  });

  it('lists the audit log, newest first', async () => {
    await runCli(['keys', 'revoke', '00000000-0000-4000-8000-000000000000'], { ...env, KERNEX_API_KEY: 'kx_wrong' });
    await runCli(['keys', 'create', 'audited', '--role', 'viewer'], env);
    const res = await runCli(['audit', 'ls', '--limit', '2', '--json'], env);
    expect(res.code).toBe(0);
    const entries = JSON.parse(res.stdout) as Array<{ action: string; result: string; actor: { name: string } }>;
    expect(entries).toHaveLength(2);
    expect(entries[0]).toMatchObject({ action: 'POST /api/v1/api-keys', result: 'success', actor: { name: 'bootstrap (KERNEX_ADMIN_KEY)' } });
    const table = await runCli(['audit', 'ls', '--failures'], env);
    expect(table.stdout.split('\n')[0]).toMatch(/^TIME\s+ACTOR\s+ACTION\s+TARGET\s+STATUS\s+RESULT$/);
    expect(table.stdout).toContain('failure KX_UNAUTHORIZED');
  });

  it('reports readiness without needing a key', async () => {
    const res = await runCli(['status', '--json'], { KERNEX_URL: server.httpUrl, XDG_CONFIG_HOME: configHome });
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual({ url: server.httpUrl, status: 'ready', checks: { started: true, database: true, broker: true, telemetryWriter: true, presenceWriter: true, eventsWriter: true } });
    expect((await runCli(['status'], env)).stdout).toMatch(/^status:\s+ready$/m);
  });

  it('reads the URL and key from the config file when the environment has none', async () => {
    await fs.mkdir(path.join(configHome, 'kernex'), { recursive: true });
    await fs.writeFile(path.join(configHome, 'kernex', 'config.json'), JSON.stringify({ url: server.httpUrl, apiKey: server.adminKey }));
    const res = await runCli(['keys', 'ls', '--json'], { XDG_CONFIG_HOME: configHome });
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout).length).toBeGreaterThan(0);
    await fs.rm(path.join(configHome, 'kernex'), { recursive: true });
  });

  it('turns each refusal into one line and a non-zero exit code', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedUrl = `http://127.0.0.1:${(closed.address() as net.AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const viewer = JSON.parse((await runCli(['keys', 'create', 'low', '--role', 'viewer', '--json'], env)).stdout) as { key: string };
    const cases: Array<[string[], Record<string, string>, string]> = [
      [['keys', 'ls'], { ...env, KERNEX_API_KEY: 'kx_wrong' }, 'kernex: invalid or revoked API key (401 KX_UNAUTHORIZED)'],
      [['keys', 'ls'], { ...env, KERNEX_API_KEY: viewer.key }, 'kernex: this needs the admin role; the key has viewer (403 KX_FORBIDDEN)'],
      [['keys', 'revoke', 'nope'], env, 'kernex: params.id must be a UUID such as 2861e1f1-14b1-421d-9fb5-8828877cb4f1 (400 KX_VALIDATION)'],
      [['keys', 'ls'], { XDG_CONFIG_HOME: configHome, KERNEX_URL: server.httpUrl }, `kernex: no API key: set KERNEX_API_KEY, pass --api-key, or put "apiKey" in ${path.join(configHome, 'kernex', 'config.json')}`],
      [['keys', 'ls', '--url', closedUrl], env, `kernex: cannot reach the Kernex server at ${closedUrl} (ECONNREFUSED)`],
    ];
    for (const [args, e, line] of cases) {
      const res = await runCli(args, e);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.stderr, args.join(' ')).toBe(`${line}\n`);
      expect(res.stdout).toBe('');
    }
  });

  it('refuses bad options before asking the server', async () => {
    const res = await runCli(['keys', 'create', 'x', '--role', 'root'], env);
    expect(res.code).not.toBe(0);
    expect(res.stderr.split('\n')[0]).toBe("error: option '--role <role>' argument 'root' is invalid. Allowed choices are viewer, operator, admin.");
  });
});

describe('kernex against a server with a small rate limit', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ KERNEX_RATE_LIMIT_PER_MIN: '2' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('says when to retry, in one line, and exits 1', async () => {
    const env = { KERNEX_URL: server.httpUrl, KERNEX_API_KEY: server.adminKey, XDG_CONFIG_HOME: os.tmpdir() };
    expect((await runCli(['keys', 'ls'], env)).code).toBe(0);
    expect((await runCli(['keys', 'ls'], env)).code).toBe(0);
    const res = await runCli(['keys', 'ls'], env);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^kernex: too many requests, retry in \d+ seconds \(429 KX_RATE_LIMITED\)\n$/);
  });
});
