import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IdentityStore, type StoredIdentity } from './identity-store.js';

function recordingLog(): { log: pino.Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  return { log: pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) }), lines };
}

describe('IdentityStore (real files)', () => {
  let root: string;
  let dir: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-identity-'));
    dir = path.join(root, 'state');
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('makes the key once, owner-only, and loads the same identity afterwards', async () => {
    const store = new IdentityStore(dir, recordingLog().log);
    await store.prepare();
    const first = await store.loadOrCreateKey('p256');
    expect(first.created).toBe(true);
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);
    expect((await fs.stat(path.join(dir, 'device.key'))).mode & 0o777).toBe(0o600);
    const again = await new IdentityStore(dir, recordingLog().log).loadOrCreateKey('p256');
    expect(again).toMatchObject({ created: false, deviceId: first.deviceId });
  });

  it('tightens a state directory that others could enter', async () => {
    await fs.mkdir(dir, { mode: 0o755 });
    await fs.chmod(dir, 0o755);
    await new IdentityStore(dir, recordingLog().log).prepare();
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('moves an unreadable key aside with an error line and makes a new identity', async () => {
    const store = new IdentityStore(dir, recordingLog().log);
    await store.prepare();
    const first = await store.loadOrCreateKey('p256');
    const pem = await fs.readFile(path.join(dir, 'device.key'), 'utf8');
    await fs.writeFile(path.join(dir, 'device.key'), pem.slice(0, 40));
    const { log, lines } = recordingLog();
    const next = await new IdentityStore(dir, log).loadOrCreateKey('p256');
    expect(next.created).toBe(true);
    expect(next.deviceId).not.toBe(first.deviceId);
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, msg: 'device key unreadable; making a new key and registering as a new device' }));
    const aside = (await fs.readdir(dir)).filter((f) => f.startsWith('device.key.unreadable-'));
    expect(aside).toHaveLength(1);
  });

  it('keeps the identity atomically and treats a damaged file as none', async () => {
    const store = new IdentityStore(dir, recordingLog().log);
    await store.prepare();
    const { deviceId } = await store.loadOrCreateKey('p256');
    const identity: StoredIdentity = { deviceId, status: 'accepted', mqtt: ['mqtt://h:1883'], serverPublicKey: 'PEM', clockOffsetMs: 42, server: 'http://h' };
    await store.saveIdentity(identity);
    expect(await store.loadIdentity(deviceId)).toEqual(identity);
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    await fs.writeFile(path.join(dir, 'identity.json'), '{"deviceId":"');
    const { log, lines } = recordingLog();
    expect(await new IdentityStore(dir, log).loadIdentity(deviceId)).toBeUndefined();
    expect(lines.map((l) => l.msg)).toContain('identity file unreadable; registering again');
    // An identity of another key (the key was replaced) is not used either.
    await store.saveIdentity({ ...identity, deviceId: 'someone-else' });
    expect(await store.loadIdentity(deviceId)).toBeUndefined();
  });
});
