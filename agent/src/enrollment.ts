import os from 'node:os';
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { HttpClient } from './device-http-client.js';
import type { DeviceKey, IdentityStore, StoredIdentity } from './identity-store.js';
import { RegistrationError } from './errors.js';
import { register } from './registration.js';
import { Backoff } from './session/backoff.js';

/** Options of {@link Enrollment}. */
export interface EnrollmentOptions {
  server: string;
  /** Where the identity is kept; none for a device with memory state (the simulator). */
  store: IdentityStore | undefined;
  /** Hardware description sent at registration (default: this machine's). */
  hardware?: Record<string, unknown>;
  key: DeviceKey;
  clock: Clock;
  log: Logger;
  enrollToken?: string;
  name?: string;
  /** The device's HTTP client (its pinned CA also puts TLS broker URLs first). */
  http: HttpClient;
  /** Called after each successful registration (the device re-emits it). */
  onRegistered?(identity: StoredIdentity): void;
}

/**
 * The device's standing with the server (DESIGN §2): the identity kept in the
 * state directory, registration (idempotent, repeated at every start to
 * refresh status, broker URLs and clock), waiting while `pending`, and the
 * enrollment token, which is sent only until the server accepted the device
 * or refused the token (a spent token must not lock the device out).
 */
export class Enrollment {
  identity: StoredIdentity | undefined;
  private token: string | undefined;

  constructor(private readonly o: EnrollmentOptions) {}

  /** Restores the stored identity and clock offset. */
  async load(): Promise<void> {
    this.identity = await this.o.store?.loadIdentity(this.o.key.deviceId);
    if (this.identity) this.o.clock.restore(this.identity.clockOffsetMs);
    this.token = !this.identity || this.identity.status === 'pending' ? this.o.enrollToken : undefined;
  }

  /**
   * Registers until accepted, sleeping a full-jitter backoff (2 s to 5 min)
   * between tries; an unreachable server with a stored accepted identity is
   * not a reason to wait. Returns early when `stopped()` turns true.
   */
  async untilAccepted(stopped: () => boolean, sleep: (ms: number) => Promise<void>): Promise<void> {
    const backoff = new Backoff({ baseMs: 2000, capMs: 300_000 });
    while (!stopped()) {
      const status = await this.registerOnce();
      if (status === 'accepted') return;
      if (status === 'unreachable' && this.identity?.status === 'accepted') {
        this.o.log.warn({ server: this.o.server }, 'server unreachable; using the stored identity');
        return;
      }
      await sleep(backoff.next());
    }
  }

  /** One registration call; stores what the server answered. Returns the status, or why it failed. */
  async registerOnce(): Promise<string> {
    const { key, clock, log } = this.o;
    try {
      const answer = await register({
        server: this.o.server,
        privateKey: key.privateKey,
        deviceId: key.deviceId,
        clock,
        http: this.o.http,
        enrollmentToken: this.token,
        name: this.o.name,
        hardware: this.o.hardware ?? { arch: os.arch(), platform: os.platform(), kernel: os.release(), cpus: os.cpus().length, memTotal: os.totalmem() },
      });
      if (answer.deviceId !== key.deviceId) throw new RegistrationError('server', `server answered for device ${answer.deviceId}, not ${key.deviceId}`, true);
      this.identity = {
        deviceId: answer.deviceId,
        status: answer.status,
        mqtt: answer.mqtt,
        serverPublicKey: answer.serverPublicKey,
        clockOffsetMs: clock.offset,
        server: this.o.server,
      };
      await this.o.store?.saveIdentity(this.identity);
      if (answer.status !== 'pending') this.token = undefined;
      this.o.onRegistered?.(this.identity);
      const level = answer.status === 'accepted' ? 'info' : 'warn';
      log[level]({ deviceId: answer.deviceId, status: answer.status, clockOffsetMs: clock.offset }, answer.status === 'pending' ? 'registered; waiting for an operator to accept the device' : 'registered');
      return answer.status;
    } catch (err) {
      if (!(err instanceof RegistrationError)) throw err;
      if (err.kind === 'bad_token' && this.token) {
        // Nothing was registered; without the token the device at least shows up as pending for an operator.
        this.token = undefined;
        log.error({ err: err.message }, 'enrollment token refused; registering without it (the device waits as pending)');
        return err.kind;
      }
      log.warn({ kind: err.kind, err: err.message }, 'registration failed; retrying');
      return err.kind;
    }
  }

  /**
   * Broker URLs in order of preference: with a pinned CA, TLS first; MQTT
   * over TCP before WebSocket (fewer bytes). `override` (one URL or a comma-separated
   * list, kept in its order) replaces them all.
   */
  brokerUrls(override?: string): string[] {
    if (override) return override.split(',');
    const secureFirst = Boolean(this.o.http.ca);
    const rank = (u: string): number => {
      const secure = u.startsWith('mqtts:') || u.startsWith('wss:');
      return (secure === secureFirst ? 0 : 2) + (u.startsWith('mqtt') ? 0 : 1);
    };
    return [...(this.identity?.mqtt ?? [])].sort((a, b) => rank(a) - rank(b));
  }
}
