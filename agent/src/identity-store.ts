import fs from 'node:fs/promises';
import path from 'node:path';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { deviceIdFromPublicKey, generateDeviceKey, type DeviceKeyType, type DeviceStatus } from '@kernex/shared';
import type { Logger } from 'pino';
import { fsyncDir } from './outbox.js';

/** What the device keeps from its last registration answer (DESIGN §2). */
export interface StoredIdentity {
  deviceId: string;
  status: DeviceStatus;
  /** Broker URLs the server told the device to use. */
  mqtt: string[];
  /** The server's public key (PEM): bundle signatures are checked against it. */
  serverPublicKey: string;
  /** serverTime - local time at registration, in ms; JWT times are local now + this. */
  clockOffsetMs: number;
  /** The server URL this identity was registered with. */
  server: string;
}

/** The device key, loaded or made. */
export interface DeviceKey {
  privateKey: KeyObject;
  deviceId: string;
  /** True when this start made the key (first start, or the old one was unreadable). */
  created: boolean;
}

const KEY_FILE = 'device.key';
const IDENTITY_FILE = 'identity.json';

/**
 * The agent's state directory: the private key (0600, never leaves the
 * device), the identity of the last registration, and the outbox, in a
 * directory only the agent's user can enter (0700). Every file is replaced
 * atomically (write a temporary file, fsync, rename, fsync the directory),
 * so a power cut leaves the old or the new version, never half of one.
 */
export class IdentityStore {
  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Creates the directory (0700) or tightens its mode; refuses a directory it cannot write. */
  async prepare(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fs.chmod(this.dir, 0o700);
    await fs.access(this.dir, fs.constants.W_OK);
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Loads the device key, or makes one of `type` on first start. A key file
   * that cannot be read as a key is moved aside (never deleted) and a new
   * identity is made, with an error line saying so, rather than a crash loop.
   */
  async loadOrCreateKey(type: DeviceKeyType): Promise<DeviceKey> {
    const file = this.file(KEY_FILE);
    let pem: string | undefined;
    try {
      pem = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (pem !== undefined) {
      try {
        const privateKey = createPrivateKey(pem);
        return { privateKey, deviceId: deviceIdFromPublicKey(privateKey), created: false };
      } catch {
        const aside = `${file}.unreadable-${Date.now()}`;
        await fs.rename(file, aside);
        await fs.rm(this.file(IDENTITY_FILE), { force: true });
        this.log.error({ file, movedTo: aside }, 'device key unreadable; making a new key and registering as a new device');
      }
    }
    const t0 = performance.now();
    const made = await generateDeviceKey(type);
    await this.writeAtomic(KEY_FILE, made.privateKeyPem);
    const privateKey = createPrivateKey(made.privateKeyPem);
    const deviceId = deviceIdFromPublicKey(privateKey);
    this.log.info({ deviceId, keyType: type, ms: Math.round(performance.now() - t0) }, 'device key created');
    return { privateKey, deviceId, created: true };
  }

  /** The stored identity, or undefined when there is none or it is damaged (then the device registers again). */
  async loadIdentity(deviceId: string): Promise<StoredIdentity | undefined> {
    let text: string;
    try {
      text = await fs.readFile(this.file(IDENTITY_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const id = JSON.parse(text) as StoredIdentity;
      if (id.deviceId !== deviceId || !Array.isArray(id.mqtt) || typeof id.serverPublicKey !== 'string') throw new Error('mismatch');
      return id;
    } catch {
      this.log.warn({ file: this.file(IDENTITY_FILE) }, 'identity file unreadable; registering again');
      return undefined;
    }
  }

  async saveIdentity(identity: StoredIdentity): Promise<void> {
    await this.writeAtomic(IDENTITY_FILE, `${JSON.stringify(identity, null, 2)}\n`);
  }

  private async writeAtomic(name: string, data: string): Promise<void> {
    const target = this.file(name);
    const tmp = `${target}.tmp`;
    const fh = await fs.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
    await fsyncDir(this.dir);
  }
}
