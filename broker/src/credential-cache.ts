import { createHash } from 'node:crypto';

/** SHA-256 of a token, base64: 44 characters kept instead of the JWT's ~400. */
const digest = (token: string): string => createHash('sha256').update(token).digest('base64');

/**
 * Verified MQTT credentials, one per device, kept until the token's `exp`:
 * a reconnect storm with the same JWT is answered without a directory lookup
 * or a signature check. It keeps the token's SHA-256, not the token: only
 * the token that was verified matches, and an entry costs a tenth of the
 * memory (one per connected device; BENCHMARKS.md, memory). Bounded; the
 * oldest entries go first.
 */
export class CredentialCache {
  private readonly entries = new Map<string, { sha256: string; exp: number }>();
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
    return e.sha256 === digest(token);
  }

  set(deviceId: string, token: string, exp: number): void {
    this.entries.delete(deviceId);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(deviceId, { sha256: digest(token), exp });
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
