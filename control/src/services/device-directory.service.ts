import { createPublicKey, type KeyObject } from 'node:crypto';
import type { DeviceDirectory, DeviceRecord } from '@kernex/broker';
import type { DevicesStore } from '../store/devices.pg.js';
import type { PresenceWriter } from '../presence/presence-writer.js';

/** Parsed keys kept; a deviceId's key never changes (the id is its hash), so entries never go stale. */
const MAX_KEYS = 100_000;

/** What this needs of the devices store (store/devices.pg.ts implements it). */
export type DeviceDirectoryRepository = Pick<DevicesStore, 'credentials'>;

/**
 * The broker's {@link DeviceDirectory} over PostgreSQL: keys and statuses from
 * `devices` (status read fresh each time the broker asks, which is only on a
 * connect it has not cached), presence through the batching writer.
 */
export class PgDeviceDirectory implements DeviceDirectory {
  private readonly keys = new Map<string, KeyObject>();

  constructor(
    private readonly store: DeviceDirectoryRepository,
    private readonly presence: PresenceWriter,
  ) {}

  async lookup(deviceId: string): Promise<DeviceRecord | undefined> {
    const device = await this.store.credentials(deviceId);
    if (!device) return undefined;
    let key = this.keys.get(deviceId);
    if (!key) {
      key = createPublicKey(device.publicKey);
      if (this.keys.size >= MAX_KEYS) this.keys.delete(this.keys.keys().next().value!);
      this.keys.set(deviceId, key);
    }
    return { publicKey: key, status: device.status };
  }

  deviceConnected(deviceId: string, at: Date): void {
    this.presence.record(deviceId, true, at);
  }

  deviceDisconnected(deviceId: string, at: Date): void {
    this.presence.record(deviceId, false, at);
  }
}
