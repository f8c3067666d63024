import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expectedForFormat, expectedForPattern, manifestSchema, registrationSchema, SEMVER_PATTERN } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeArchive, makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { startCliServer, type CliServer } from '../test-support/cli-server.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { runCli } from '../test-support/run-cli.js';
import { KERNEX_BIN } from '../test-support/spawn-server.js';

/**
 * `kernex` and `kernex sim` as a new user meets them (issue 10 #17, #19, #20): real CLI
 * processes against a real server. Expectations come from DESIGN §5 and §7.
 */
describe('the kernex CLI as a new user meets it (real processes, real server)', () => {
  let cli: CliServer;
  let work: string;
  const children = new Set<ChildProcessWithoutNullStreams>();

  beforeAll(async () => {
    cli = await startCliServer();
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-cli-ux-'));
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await cli?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  /** Only the given settings: nothing of the developer's KERNEX_* or config file leaks in. */
  function onlyEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KERNEX_')));
    return { ...env, XDG_CONFIG_HOME: cli.configHome, ...extra };
  }

  /** A real `kernex` process with piped stdio; `closed` resolves with its exit code. */
  function start(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcessWithoutNullStreams; closed: Promise<number | null>; stdout(): string; stderr(): string } {
    const child = spawn(process.execPath, [KERNEX_BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => (children.delete(child), resolve(code))));
    return { child, closed, stdout: () => out, stderr: () => err };
  }

  const devices = async (query: string): Promise<Array<{ id: string; status: string; online: boolean; tags: string[] }>> =>
    (await api('GET', `${cli.server.httpUrl}/api/v1/devices?limit=500&${query}`, cli.server.adminHeaders)).body.items;

  async function acceptedDevice(): Promise<string> {
    const token = await api('POST', `${cli.server.httpUrl}/api/v1/enrollment-tokens`, cli.server.adminHeaders, { uses: 1, expiresInS: 600 });
    const d = await makeDevice();
    const res = await register(cli.server.httpUrl, d, { enrollmentToken: token.body.token });
    expect(res.body.status).toBe('accepted');
    return d.id;
  }

  describe('bundles as name@version (#20, DESIGN §5)', () => {
    let bundleId: string;

    it('kernex deploy app@1.2.0 --all resolves the bundle, and bundles and deployments are shown as name@version', async () => {
      await acceptedDevice();
      const file = path.join(work, 'app-1.2.0.tar.gz');
      await fs.writeFile(file, await makeBundle({ name: 'app', version: '1.2.0' }));
      const pushed = await runCli(['bundles', 'push', file, '--json'], cli.env);
      expect(pushed.code).toBe(0);
      bundleId = (JSON.parse(pushed.stdout) as { id: string }).id;

      const listed = await runCli(['bundles', 'ls'], cli.env);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/^app@1\.2\.0\s/m);

      const deployed = await runCli(['deploy', 'app@1.2.0', '--all'], cli.env);
      expect(deployed).toMatchObject({ code: 0, stderr: '' });
      expect(deployed.stdout).toContain('app@1.2.0');
      const made = (await api('GET', `${cli.server.httpUrl}/api/v1/deployments`, cli.server.adminHeaders)).body.items as Array<{ id: string; bundleId: string }>;
      expect(made).toHaveLength(1);
      expect(made[0]!.bundleId).toBe(bundleId);

      const ls = await runCli(['deployments', 'ls'], cli.env);
      expect(ls.stdout).toMatch(new RegExp(`^${made[0]!.id}\\s+app@1\\.2\\.0\\s`, 'm'));
      expect(ls.stdout).not.toContain(bundleId);
      const shown = await runCli(['deployments', 'show', made[0]!.id, '--no-executions'], cli.env);
      expect(shown.stdout).toMatch(/^bundle:\s+app@1\.2\.0$/m);
    });

    it('a bad version or bundle id says what was expected, never the regular expression, in the CLI and in the API', async () => {
      const regexBits = [SEMVER_PATTERN, '[1-9]\\d*', 'must match'];
      for (const args of [['deploy', 'app@1.x', '--all'], ['bundles', 'show', 'app@latest']]) {
        const res = await runCli(args, cli.env);
        expect(res.code).toBe(1);
        expect(res.stderr).toContain('semver');
        expect(res.stderr).toContain('1.2.0');
        for (const bit of regexBits) expect(res.stderr).not.toContain(bit);
      }
      const notAnId = await runCli(['bundles', 'show', 'latest'], cli.env);
      expect(notAnId.code).toBe(1);
      expect(notAnId.stderr).toContain('name@version');

      // The API's 400s: a manifest version that is not semver, a device id, a bundle id.
      const upload = await fetch(`${cli.server.httpUrl}/api/v1/bundles`, {
        method: 'POST',
        headers: { ...cli.server.adminHeaders, 'content-type': 'application/gzip' },
        body: await makeArchive([{ name: 'manifest.json', body: '{"name":"app","version":"v1","install":"i.sh"}' }, { name: 'i.sh', body: 'exit 0' }]),
      });
      const uploadBody = (await upload.json()) as { message: string };
      expect(upload.status).toBe(400);
      expect(uploadBody.message).toContain('semver');
      for (const bit of regexBits) expect(uploadBody.message).not.toContain(bit);

      const device = await api('GET', `${cli.server.httpUrl}/api/v1/devices/not-a-device`, cli.server.adminHeaders);
      expect(device.status).toBe(400);
      expect(device.body.message).toContain('24 lowercase hex'); // DESIGN §2: deviceId is 24 lowercase hex characters
      expect(device.body.message).not.toContain('[0-9a-f]');

      const deployment = await api('POST', `${cli.server.httpUrl}/api/v1/deployments`, cli.server.adminHeaders, { bundleId: 'app@1.2.0', target: { all: true } });
      expect(deployment.status).toBe(400);
      expect(deployment.body.message).not.toContain('must match');
    });

    it('every pattern and format a request schema uses has words for what it expects', () => {
      const found: Array<{ where: string; keyword: 'pattern' | 'format'; value: string }> = [];
      const walk = (node: unknown, where: string): void => {
        if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}[${i}]`));
        if (typeof node !== 'object' || node === null) return;
        for (const [k, v] of Object.entries(node)) {
          if ((k === 'pattern' || k === 'format') && typeof v === 'string') found.push({ where, keyword: k, value: v });
          else walk(v, `${where}.${k}`);
        }
      };
      for (const r of cli.server.app.routeTable) {
        const s = (r.schema ?? {}) as Record<string, unknown>;
        for (const part of ['body', 'querystring', 'params', 'headers']) walk(s[part], `${r.method} ${r.url} ${part}`);
      }
      walk(registrationSchema, 'registration');
      walk(manifestSchema, 'manifest');
      expect(found.length).toBeGreaterThan(0);
      const missing = found.filter((f) => (f.keyword === 'pattern' ? expectedForPattern(f.value) : expectedForFormat(f.value)) === undefined);
      expect(missing).toEqual([]);
    });
  });

  describe('kernex sim reads the operator settings and enrolls its own devices (#19, DESIGN §7)', () => {
    async function simFleet(extra: string[], expectTag: string): Promise<void> {
      const keyCache = await fs.mkdtemp(path.join(work, 'keys-'));
      const sim = start(['sim', '--devices', '20', '--workers', '1', '--summary-s', '0', '--key-cache', keyCache, ...extra], onlyEnv({ KERNEX_URL: cli.server.httpUrl, KERNEX_API_KEY: cli.server.adminKey }));
      const ready = async (): Promise<number> => (await devices(`tag=${expectTag}&status=accepted&online=true`)).length;
      await expect.poll(ready, { timeout: 30_000 }).toBe(20);
      for (const d of await devices(`tag=${expectTag}`)) expect(d.tags).toEqual([expectTag]);
      sim.child.kill('SIGTERM');
      expect(await sim.closed).toBe(0);
    }

    it('with only KERNEX_URL and KERNEX_API_KEY, all 20 devices become accepted and online, tagged sim', async () => {
      await simFleet([], 'sim');
    });

    it('with --tag lab, they are tagged lab', async () => {
      await simFleet(['--tag', 'lab'], 'lab');
    });

    it('reads the config file the other commands read, when the environment names nothing', async () => {
      const home = await fs.mkdtemp(path.join(work, 'config-'));
      await fs.mkdir(path.join(home, 'kernex'));
      await fs.writeFile(path.join(home, 'kernex', 'config.json'), JSON.stringify({ url: cli.server.httpUrl, apiKey: cli.server.adminKey }));
      const keyCache = await fs.mkdtemp(path.join(work, 'keys-'));
      const sim = start(['sim', '--devices', '2', '--workers', '1', '--summary-s', '0', '--key-cache', keyCache, '--tag', 'from-config'], onlyEnv({ XDG_CONFIG_HOME: home }));
      await expect.poll(async () => (await devices('tag=from-config&status=accepted&online=true')).length, { timeout: 30_000 }).toBe(2);
      sim.child.kill('SIGTERM');
      expect(await sim.closed).toBe(0);
    });

    it('with a key that may not make enrollment tokens, says so in one line and exits 1', async () => {
      const viewer = await api('POST', `${cli.server.httpUrl}/api/v1/api-keys`, cli.server.adminHeaders, { name: 'sim-viewer', role: 'viewer' });
      expect(viewer.status).toBe(201);
      const res = await runCli(['sim', '--devices', '2', '--key-cache', path.join(work, 'keys-viewer')], { KERNEX_URL: cli.server.httpUrl, KERNEX_API_KEY: viewer.body.key, XDG_CONFIG_HOME: cli.configHome });
      expect(res.code).toBe(1);
      expect(res.stderr.split('\n')).toHaveLength(2);
      expect(res.stderr).toContain('403');
    });

    it('without an API key or an enrollment token, says so in one line and exits 1, registering nothing', async () => {
      const before = (await devices('')).length;
      const res = await runCli(['sim', '--devices', '3', '--key-cache', path.join(work, 'keys-none')], { KERNEX_URL: cli.server.httpUrl, XDG_CONFIG_HOME: cli.configHome });
      expect(res.code).toBe(1);
      expect(res.stderr.split('\n')).toHaveLength(2); // one line and its newline
      expect(res.stderr).toContain('KERNEX_API_KEY');
      expect((await devices('')).length).toBe(before);
    });
  });

  describe('a reader that closes its end of the pipe (#17)', () => {
    it('kernex devices ls piped into a reader that closes after the first chunk exits 0 with nothing on stderr', async () => {
      // Enough output to outlast the pipe's buffer: 300 devices with 32 tags of 64 characters.
      const tags = Array.from({ length: 32 }, (_, i) => `${String(i).padStart(2, '0')}`.padEnd(64, 't'));
      const token = await api('POST', `${cli.server.httpUrl}/api/v1/enrollment-tokens`, cli.server.adminHeaders, { uses: 300, expiresInS: 600, tags });
      expect(token.status).toBe(201);
      for (let batch = 0; batch < 6; batch++) {
        await Promise.all(Array.from({ length: 50 }, async () => register(cli.server.httpUrl, await makeDevice(), { enrollmentToken: token.body.token })));
      }
      const ls = start(['devices', 'ls'], onlyEnv({ KERNEX_URL: cli.server.httpUrl, KERNEX_API_KEY: cli.server.adminKey }));
      ls.child.stdout.once('data', () => ls.child.stdout.destroy());
      expect(await ls.closed).toBe(0);
      expect(ls.stderr()).toBe('');
    });

    it('kernex sim whose stderr reader goes away stops its fleet in order and exits 0 with its summary', async () => {
      const sim = start(
        ['sim', '--devices', '2', '--workers', '1', '--summary-s', '1', '--json', '--key-cache', await fs.mkdtemp(path.join(work, 'keys-')), '--tag', 'pipe'],
        onlyEnv({ KERNEX_URL: cli.server.httpUrl, KERNEX_API_KEY: cli.server.adminKey }),
      );
      await expect.poll(async () => (await devices('tag=pipe&online=true')).length, { timeout: 30_000 }).toBe(2);
      sim.child.stderr.once('data', () => sim.child.stderr.destroy());
      expect(await sim.closed).toBe(0);
      expect(JSON.parse(sim.stdout())).toMatchObject({ devices: 2, everConnected: 2 });
      await expect.poll(async () => (await devices('tag=pipe&online=true')).length).toBe(0);
    });
  });
});
