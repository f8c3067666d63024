import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { bundleSigningText, type DeployCommand, type ExecutionEvent } from '@kernex/shared';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeArchive, makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import type { DeviceContext } from '../device.js';
import { HttpClient } from '../device-http-client.js';
import { BundleInstaller } from './installer.js';

const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const serverPublicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

interface Served {
  body: Buffer;
  /** Cut the connection after this many bytes, on the first request only. */
  cutAfter?: number;
}

/** A real HTTP server that serves blobs with Range/If-Range, and can cut a response half-way. */
class BlobServer {
  readonly blobs = new Map<string, Served>();
  readonly requests: Array<{ path: string; range?: string; ifRange?: string; auth?: string; sent: number }> = [];
  private readonly server = http.createServer((req, res) => this.serve(req, res));
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const blob = this.blobs.get(req.url ?? '');
    const record = { path: req.url ?? '', range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, auth: req.headers.authorization, sent: 0 };
    this.requests.push(record);
    if (!blob) {
      res.writeHead(404).end();
      return;
    }
    const etag = `"${createHash('sha256').update(blob.body).digest('hex')}"`;
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && (!record.ifRange || record.ifRange === etag)) start = Number(m[1]);
    const part = blob.body.subarray(start);
    res.writeHead(start > 0 ? 206 : 200, {
      etag,
      'content-length': part.length,
      ...(start > 0 ? { 'content-range': `bytes ${start}-${blob.body.length - 1}/${blob.body.length}` } : {}),
    });
    if (blob.cutAfter !== undefined) {
      const cut = blob.cutAfter;
      blob.cutAfter = undefined;
      res.write(part.subarray(0, cut), () => {
        record.sent = cut;
        res.socket?.destroy();
      });
      return;
    }
    record.sent = part.length;
    res.end(part);
  }
}

function context(server: string, events: ExecutionEvent[], stateDir: string): DeviceContext {
  return {
    deviceId: 'dev1',
    stateDir,
    serverPublicKey,
    server,
    http: new HttpClient(),
    log,
    report: async (e) => {
      events.push(e);
    },
    httpToken: async () => 'device-jwt',
  };
}

let n = 0;
async function deployOf(blobs: BlobServer, archive: Buffer, opts: { name?: string; version: string; timeoutS?: number; cutAfter?: number; tamper?: 'signature' | 'sha256' }): Promise<DeployCommand> {
  n += 1;
  const name = opts.name ?? 'app';
  const sha256 = createHash('sha256').update(archive).digest('hex');
  const signature = sign('sha256', Buffer.from(bundleSigningText(name, opts.version, sha256)), keys.privateKey).toString('base64');
  const id = `b${n}`;
  blobs.blobs.set(`/api/v1/bundles/${id}/blob`, { body: archive, cutAfter: opts.cutAfter });
  return {
    id: `c${n}`,
    type: 'deploy',
    executionId: `e${n}`,
    issuedAt: new Date().toISOString(),
    timeoutS: opts.timeoutS ?? 30,
    bundle: {
      id,
      name,
      version: opts.version,
      sha256: opts.tamper === 'sha256' ? '0'.repeat(64) : sha256,
      size: archive.length,
      url: `/api/v1/bundles/${id}/blob`,
      signature: opts.tamper === 'signature' ? Buffer.from('forged').toString('base64') : signature,
    },
  };
}

const states = (events: ExecutionEvent[], executionId: string): string[] => events.filter((e) => e.executionId === executionId).map((e) => e.state);

describe('BundleInstaller', () => {
  const blobs = new BlobServer();
  let stateDir: string;
  let events: ExecutionEvent[];
  let device: DeviceContext;
  let installer: BundleInstaller;

  beforeAll(() => blobs.start());
  afterAll(() => blobs.stop());

  async function fresh(): Promise<void> {
    stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-agent-bundles-'));
    events = [];
    device = context(blobs.url, events, stateDir);
    installer = await BundleInstaller.open({ stateDir, log, downloadAttempts: 3 });
  }
  afterEach(async () => {
    await installer.idle();
    await fs.rm(stateDir, { recursive: true, force: true });
  });

  async function run(cmd: DeployCommand): Promise<string[]> {
    await installer.handle(cmd, device);
    await installer.idle();
    return states(events, cmd.executionId);
  }

  const current = (): Promise<string> => fs.readlink(path.join(stateDir, 'bundles', 'app', 'current'));

  it('installs, runs install in the version directory, switches current, reports each state', async () => {
    await fresh();
    const archive = await makeBundle({ version: '1.0.0', install: '#!/bin/sh\npwd > installed-in\n', healthCheck: '#!/bin/sh\ntest -f installed-in\n' });
    const cmd = await deployOf(blobs, archive, { version: '1.0.0' });
    expect(await run(cmd)).toEqual(['received', 'downloading', 'installing', 'verifying', 'succeeded']);
    expect(await current()).toBe('1.0.0');
    const dir = path.join(stateDir, 'bundles', 'app', '1.0.0');
    expect((await fs.readFile(path.join(dir, 'installed-in'), 'utf8')).trim()).toBe(await fs.realpath(dir));
    expect(installer.installed()).toEqual({ app: '1.0.0' });
    expect(blobs.requests.at(-1)!.auth).toBe('Bearer device-jwt');

    // Delivered again (QoS 1 is at least once): acted on once.
    await installer.handle(cmd, device);
    await installer.idle();
    expect(states(events, cmd.executionId)).toHaveLength(5);

    // A new execution of the version already current is skipped.
    const again = await deployOf(blobs, archive, { version: '1.0.0' });
    expect(await run(again)).toEqual(['received', 'skipped']);
  });

  it('resumes a download cut half-way without fetching the same bytes again', async () => {
    await fresh();
    const archive = await makeBundle({ version: '1.0.0', padding: 200_000 });
    const half = Math.floor(archive.length / 2);
    const cmd = await deployOf(blobs, archive, { version: '1.0.0', cutAfter: half });
    const before = blobs.requests.length;
    expect((await run(cmd)).at(-1)).toBe('succeeded');
    const reqs = blobs.requests.slice(before);
    expect(reqs).toHaveLength(2);
    expect(reqs[0]!.range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(reqs[1]!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(half);
    expect(reqs[1]!.ifRange).toBe(`"${cmd.bundle.sha256}"`);
    // Every byte fetched once: what the first request delivered plus the rest.
    expect(reqs[1]!.sent).toBe(archive.length - resumedAt);
  });

  it('rolls back when the health check fails, with the old version still current', async () => {
    await fresh();
    expect((await run(await deployOf(blobs, await makeBundle({ version: '1.0.0' }), { version: '1.0.0' }))).at(-1)).toBe('succeeded');
    const bad = await deployOf(blobs, await makeBundle({ version: '2.0.0', healthCheck: '#!/bin/sh\necho unhealthy >&2\nexit 3\n' }), { version: '2.0.0' });
    expect(await run(bad)).toEqual(['received', 'downloading', 'installing', 'verifying', 'rolled_back']);
    expect(events.at(-1)!.error).toMatch(/health check script 'check.sh' exited with 3: unhealthy/);
    expect(await current()).toBe('1.0.0');
    await expect(fs.access(path.join(stateDir, 'bundles', 'app', '2.0.0'))).rejects.toThrow();
    expect(installer.installed()).toEqual({ app: '1.0.0' });
  });

  it('ends failed when the first install fails: nothing to go back to', async () => {
    await fresh();
    const cmd = await deployOf(blobs, await makeBundle({ version: '1.0.0', install: '#!/bin/sh\nexit 1\n' }), { version: '1.0.0' });
    expect((await run(cmd)).at(-1)).toBe('failed');
    expect(installer.installed()).toEqual({});
  });

  it('kills the process group of an install script that hangs past its limit', async () => {
    await fresh();
    await run(await deployOf(blobs, await makeBundle({ version: '1.0.0' }), { version: '1.0.0' }));
    const hang = '#!/bin/sh\nsleep 300 &\necho $! > child.pid\nwait\n';
    const cmd = await deployOf(blobs, await makeBundle({ version: '2.0.0', install: hang }), { version: '2.0.0', timeoutS: 1 });
    // The child pid file is in the version directory, which is removed: watch for it while it runs.
    let childPid: number | undefined;
    const pidFile = path.join(stateDir, 'bundles', 'app', '2.0.0', 'child.pid');
    const done = run(cmd);
    await expect.poll(async () => (childPid = Number(await fs.readFile(pidFile, 'utf8').catch(() => '0')))).toBeGreaterThan(0);
    expect((await done).at(-1)).toBe('rolled_back');
    expect(events.at(-1)!.error).toMatch(/install script 'install.sh' timed out after 1 s/);
    // Alive = exists and is not a zombie (PID 1 of a container may never reap it).
    const alive = async (): Promise<boolean> => {
      const stat = await fs.readFile(`/proc/${childPid}/stat`, 'utf8').catch(() => '');
      return stat !== '' && !/^\d+ \(.*\) Z /.test(stat);
    };
    await expect.poll(alive).toBe(false);
    expect(await current()).toBe('1.0.0');
  });

  it.each([
    ['a forged signature', 'signature' as const, /signature does not match/],
    ['a wrong sha256', 'sha256' as const, /sha256 is [0-9a-f]{64}, expected 0{64}/],
  ])('refuses a download with %s and stays on the working version', async (_what, tamper, error) => {
    await fresh();
    await run(await deployOf(blobs, await makeBundle({ version: '1.0.0' }), { version: '1.0.0' }));
    const cmd = await deployOf(blobs, await makeBundle({ version: '2.0.0' }), { version: '2.0.0', tamper });
    expect(await run(cmd)).toEqual(['received', 'downloading', 'failed']);
    expect(events.at(-1)!.error).toMatch(error);
    expect(await current()).toBe('1.0.0');
  });

  it('refuses a hostile archive at extraction and writes nothing outside the bundle', async () => {
    await fresh();
    await run(await deployOf(blobs, await makeBundle({ version: '1.0.0' }), { version: '1.0.0' }));
    const evil = await makeArchive([
      { name: 'manifest.json', body: JSON.stringify({ name: 'app', version: '2.0.0', install: 'install.sh' }) },
      { name: 'install.sh', body: '#!/bin/sh\n' },
      { name: 'escape', type: 'symlink', linkname: '../../..' },
    ]);
    const cmd = await deployOf(blobs, evil, { version: '2.0.0' });
    expect((await run(cmd)).at(-1)).toBe('rolled_back');
    expect(events.at(-1)!.error).toMatch(/extract failed: unsafe entry 'escape'/);
    expect(await current()).toBe('1.0.0');
    expect((await fs.readdir(path.join(stateDir, 'bundles', 'app'))).sort()).toEqual(['1.0.0', 'current']);
  });

  it('ends rolled_back when the disk fills during extraction', async () => {
    await fresh();
    await run(await deployOf(blobs, await makeBundle({ version: '1.0.0' }), { version: '1.0.0' }));
    // The same state directory, now with a disk that refuses every write.
    const full = (): Writable => new Writable({ write: (_c, _e, cb) => cb(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })) });
    installer = await BundleInstaller.open({ stateDir, log, extract: { openWrite: full } });
    const cmd = await deployOf(blobs, await makeBundle({ version: '2.0.0' }), { version: '2.0.0' });
    expect((await run(cmd)).at(-1)).toBe('rolled_back');
    expect(events.at(-1)!.error).toMatch(/extract failed: ENOSPC/);
    expect(await current()).toBe('1.0.0');
    expect((await fs.readdir(path.join(stateDir, 'bundles', 'app'))).sort()).toEqual(['1.0.0', 'current']);
  });

  it('cancels before installing, and a rollback restores the version kept before', async () => {
    await fresh();
    const v1 = await deployOf(blobs, await makeBundle({ version: '1.0.0' }), { version: '1.0.0' });
    await run(v1);
    const v2 = await deployOf(blobs, await makeBundle({ version: '2.0.0' }), { version: '2.0.0' });
    expect((await run(v2)).at(-1)).toBe('succeeded');
    expect(await current()).toBe('2.0.0');

    await installer.handle({ id: 'r1', type: 'rollback', executionId: v2.executionId, issuedAt: '', name: 'app' }, device);
    expect(states(events, v2.executionId).at(-1)).toBe('rolled_back');
    expect(await current()).toBe('1.0.0');
    expect(installer.installed()).toEqual({ app: '1.0.0' });

    // Cancel before the deploy arrives: the late deploy does nothing.
    const v3 = await deployOf(blobs, await makeBundle({ version: '3.0.0' }), { version: '3.0.0' });
    await installer.handle({ id: 'x', type: 'cancel', executionId: v3.executionId, issuedAt: '' }, device);
    expect(await run(v3)).toEqual(['cancelled']);
    expect(await current()).toBe('1.0.0');
  });
});
