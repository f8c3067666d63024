import { createPublicKey, type KeyObject } from 'node:crypto';
import type { DeviceDirectory, DeviceRecord } from '@kernex/broker';
import type { DevicesStore } from '../store/devices.pg.js';
import type { PresenceWriter } from '../presence/presence-writer.js';

/**
 * Parsed keys kept, most recently used last; a deviceId's key never changes
 * (the id is its hash), so entries never go stale. Few on purpose: a parsed
 * P-256 KeyObject holds about 2.4 KB of OpenSSL memory, the row read on every
 * uncached connect brings the PEM anyway, and parsing it costs about as much
 * as the signature check (tens of microseconds). The cache is for devices that
 * reconnect often, not one entry per device of the fleet (BENCHMARKS.md, memory).
 */
export const MAX_PARSED_KEYS = 256;

/** What this needs of the devices store (store/devices.pg.ts implements it). */
export type DeviceDirectoryRepository = Pick<DevicesStore, 'credentials'>;

/**
 * The broker's {@link DeviceDirectory} over PostgreSQL: keys and statuses from
 * `devices` (status read fresh each time the broker asks, which is only on a
 * connect it has not cached), presence through the batching writer.
 */
export class PgDeviceDirectory implements DeviceDirectory {
  private readonly keys = new Map<string, KeyObject>();

  /** How many parsed keys are kept (at most {@link MAX_PARSED_KEYS}). */
  get parsedKeys(): number {
    return this.keys.size;
  }

  constructor(
    private readonly store: DeviceDirectoryRepository,
    private readonly presence: PresenceWriter,
  ) {}

  async lookup(deviceId: string): Promise<DeviceRecord | undefined> {
    const device = await this.store.credentials(deviceId);
    if (!device) return undefined;
    let key = this.keys.get(deviceId);
    if (key) this.keys.delete(deviceId);
    else {
      key = createPublicKey(device.publicKey);
      if (this.keys.size >= MAX_PARSED_KEYS) this.keys.delete(this.keys.keys().next().value!);
    }
    this.keys.set(deviceId, key);
    return { publicKey: key, status: device.status };
  }

  deviceConnected(deviceId: string, at: Date): void {
    this.presence.record(deviceId, true, at);
  }

  deviceDisconnected(deviceId: string, at: Date): void {
    this.presence.record(deviceId, false, at);
  }
}
