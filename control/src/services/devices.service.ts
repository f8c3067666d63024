import type { DeviceStatus } from '@kernex/shared';
import type { Logger } from 'pino';
import type { Principal } from '../auth/principal.js';
import { Errors } from '../errors.js';
import { decodeCursor, isDeviceId, toPage, type Page } from '../paging.js';
import type { DeviceFilter, DeviceRow, DevicesStore } from '../store/devices.pg.js';

/** A device as the API answers it (DESIGN §2). */
export interface DeviceView {
  id: string;
  name: string | null;
  status: DeviceStatus;
  online: boolean;
  lastSeenAt: string | null;
  tags: string[];
  hardware: Record<string, unknown> | null;
  bundles: Record<string, string>;
  /** The latest telemetry sample (short keys, DESIGN §3) and when the server received it. */
  telemetry: Record<string, unknown> | null;
  telemetryAt: string | null;
  createdAt: string;
}

export const deviceView = (d: DeviceRow): DeviceView => ({
  id: d.id,
  name: d.name,
  status: d.status,
  online: d.online,
  lastSeenAt: d.lastSeenAt?.toISOString() ?? null,
  tags: d.tags,
  hardware: d.hardware,
  bundles: d.bundles,
  telemetry: d.telemetry,
  telemetryAt: d.telemetryAt?.toISOString() ?? null,
  createdAt: d.createdAt.toISOString(),
});


/** What the devices service needs from the broker: end a live session at once. */
export interface DeviceSessions {
  disconnectDevice(deviceId: string): Promise<void>;
}

/** Anything that caches a device's credentials and must forget them when its status changes. */
export interface CredentialCache {
  forget(deviceId: string): void;
}

/** Status changes an operator may make, and the statuses each may start from. */
const TRANSITIONS = {
  accept: { from: ['pending', 'rejected'], to: 'accepted' },
  reject: { from: ['pending', 'accepted'], to: 'rejected' },
  decommission: { from: ['pending', 'accepted', 'rejected'], to: 'decommissioned' },
} as const satisfies Record<string, { from: readonly DeviceStatus[]; to: DeviceStatus }>;

/** The device resource: read, list, rename and tag, accept, reject, decommission. */
export class DevicesService {
  constructor(
    private readonly store: DevicesStore,
    private readonly sessions: DeviceSessions,
    private readonly caches: readonly CredentialCache[],
    private readonly log: Logger,
    /** Told each status change an operator made (the live event stream). */
    private readonly onStatusChange: (d: DeviceView) => void = () => {},
  ) {}

  /** A device; a device principal may read only itself. */
  async get(id: string, principal?: Principal): Promise<DeviceView> {
    if (principal?.kind === 'device' && principal.deviceId !== id) throw new Errors.FORBIDDEN('a device may read only itself');
    const row = await this.store.get(id);
    if (!row) throw new Errors.NOT_FOUND('device');
    return deviceView(row);
  }

  /** A page in registration order; the cursor holds the last device id seen. */
  async list(filter: DeviceFilter, limit: number, cursor: string | undefined): Promise<Page<DeviceView>> {
    const after = cursor === undefined ? undefined : decodeCursor(cursor, isDeviceId);
    const rows = await this.store.list(filter, limit + 1, after);
    return toPage(rows, limit, (r) => r.id, deviceView);
  }

  async update(id: string, patch: { name?: string; tags?: string[] }): Promise<DeviceView> {
    const tags = patch.tags === undefined ? undefined : [...new Set(patch.tags)];
    const row = await this.store.update(id, { name: patch.name, tags });
    if (!row) throw new Errors.NOT_FOUND('device');
    return deviceView(row);
  }

  /**
   * Applies an operator's decision. Repeating one is a no-op answering the
   * device; a decommissioned device stays so (409). Rejecting or
   * decommissioning ends a live MQTT session at once (DESIGN §2).
   */
  async decide(id: string, action: keyof typeof TRANSITIONS): Promise<DeviceView> {
    const { from, to } = TRANSITIONS[action];
    let row = await this.store.transition(id, from, to);
    if (!row) {
      row = await this.store.get(id);
      if (!row) throw new Errors.NOT_FOUND('device');
      if (row.status !== to) throw new Errors.CONFLICT(`device is ${row.status}; it cannot be ${to}`);
      return deviceView(row);
    }
    this.log.info({ deviceId: id, status: to }, 'device status changed');
    this.onStatusChange(deviceView(row));
    if (to !== 'accepted') {
      for (const c of this.caches) c.forget(id);
      await this.sessions.disconnectDevice(id);
    }
    return deviceView(row);
  }
}
