import type { KeyObject } from 'node:crypto';
import type { DeviceStatus } from '@kernex/shared';

/** What the broker needs to know of a device to authenticate it. */
export interface DeviceRecord {
  /** The registered public key (SPKI PEM or KeyObject); it never changes for a deviceId. */
  publicKey: string | KeyObject;
  status: DeviceStatus;
}

/**
 * The broker's only window on the device registry, implemented by the
 * server over PostgreSQL (as Aedes takes a persistence object): the broker
 * holds no SQL (DESIGN §1).
 *
 * `deviceConnected`/`deviceDisconnected` are called from the broker's own
 * session events (DESIGN §3: presence is not what a device claims). They must
 * not throw or block; an implementation queues and writes in batches.
 */
export interface DeviceDirectory {
  /** The device's key and status, or `undefined` when the id is unknown. May reject when the store is down. */
  lookup(deviceId: string): Promise<DeviceRecord | undefined>;
  /** A session of the device started (CONNACK sent). */
  deviceConnected(deviceId: string, at: Date): void;
  /** The device's last session ended (a takeover by a newer connection is not an end). */
  deviceDisconnected(deviceId: string, at: Date): void;
}

/**
 * An in-memory {@link DeviceDirectory}, for tests, benchmarks and the
 * simulator: devices are added by hand, presence is kept in a map.
 */
export class MemoryDeviceDirectory implements DeviceDirectory {
  readonly devices = new Map<string, DeviceRecord>();
  readonly presence = new Map<string, { online: boolean; at: Date }>();

  set(deviceId: string, record: DeviceRecord): this {
    this.devices.set(deviceId, record);
    return this;
  }

  async lookup(deviceId: string): Promise<DeviceRecord | undefined> {
    return this.devices.get(deviceId);
  }

  deviceConnected(deviceId: string, at: Date): void {
    this.presence.set(deviceId, { online: true, at });
  }

  deviceDisconnected(deviceId: string, at: Date): void {
    this.presence.set(deviceId, { online: false, at });
  }
}
