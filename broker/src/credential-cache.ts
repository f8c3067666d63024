/**
 * Verified MQTT credentials, one per device, kept until the token's `exp`:
 * a reconnect storm with the same JWT is answered without a directory lookup
 * or a signature check. Bounded; the oldest entries go first.
 */
export class CredentialCache {
  private readonly entries = new Map<string, { token: string; exp: number }>();
  /** Bumped by {@link forget}: a verification that started before a status change must not count. */
  private readonly epochs = new Map<string, number>();

  constructor(private readonly max = 100_000) {}

  /** True when `token` was verified for `deviceId` and has not expired at `nowS`. */
  has(deviceId: string, token: string, nowS: number): boolean {
    const e = this.entries.get(deviceId);
    if (!e) return false;
    if (nowS >= e.exp) {
      this.entries.delete(deviceId);
      return false;
    }
    return e.token === token;
  }

  set(deviceId: string, token: string, exp: number): void {
    this.entries.delete(deviceId);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(deviceId, { token, exp });
  }

  /** Forgets a device (rejected, decommissioned): its next CONNECT is checked against the directory. */
  forget(deviceId: string): void {
    this.entries.delete(deviceId);
    this.epochs.set(deviceId, this.epoch(deviceId) + 1);
  }

  /** Changes whenever the device is forgotten; authentication compares it before and after its lookup. */
  epoch(deviceId: string): number {
    return this.epochs.get(deviceId) ?? 0;
  }

  get size(): number {
    return this.entries.size;
  }
}
