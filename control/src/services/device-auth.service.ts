import { JwtError, peekSubject, RefusalSummary, verifyDeviceJwt } from '@kernex/shared';
import type { Logger } from 'pino';
import type { DevicesStore } from '../store/devices.pg.js';

/** Most verified tokens kept; the oldest go first beyond this. */
const MAX_CACHED = 10_000;

/** What this needs of the devices store (store/devices.pg.ts implements it). */
export type DeviceCredentialsRepository = Pick<DevicesStore, 'credentials'>;

/**
 * Device HTTP authentication (DESIGN §2): `Authorization: Bearer <JWT>` with
 * `aud` kernex-http, signed by the device's registered key, device accepted.
 * A verified token is cached until its `exp`, so a device polling with one
 * token costs one signature check; a status change drops the device's entries.
 */
export class DeviceAuthService {
  private readonly cache = new Map<string, { deviceId: string; exp: number }>();
  /** Each refused token at debug, a warn summary per device and reason: a bad device must not flood the log. */
  private readonly refusals: RefusalSummary;

  constructor(
    private readonly devices: DeviceCredentialsRepository,
    log: Logger,
    /** The installation's time, ms since the epoch (a cluster node: the database's clock, DESIGN §8). */
    private readonly now: () => number = Date.now,
  ) {
    this.refusals = new RefusalSummary(log);
  }

  /** The `verifyDeviceToken` of the auth plugin: the device, or undefined when refused. */
  readonly verify = async (token: string): Promise<{ deviceId: string } | undefined> => {
    const now = this.now() / 1000;
    const hit = this.cache.get(token);
    if (hit && now < hit.exp) return { deviceId: hit.deviceId };
    if (hit) this.cache.delete(token);

    const deviceId = peekSubject(token);
    if (!deviceId) return undefined;
    const device = await this.devices.credentials(deviceId);
    if (!device || device.status !== 'accepted') {
      this.refusals.refused(deviceId, device?.status ?? 'unknown_device', 'device token refused', { deviceId });
      return undefined;
    }
    try {
      const claims = await verifyDeviceJwt(token, { publicKey: device.publicKey, deviceId, aud: 'kernex-http', now });
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(token, { deviceId, exp: claims.exp });
      return { deviceId };
    } catch (err) {
      if (!(err instanceof JwtError)) throw err;
      this.refusals.refused(deviceId, err.reason, 'device token refused', { deviceId });
      return undefined;
    }
  };

  /** Drops every cached token of a device (rejected, decommissioned). */
  forget(deviceId: string): void {
    for (const [token, entry] of this.cache) if (entry.deviceId === deviceId) this.cache.delete(token);
  }
}
