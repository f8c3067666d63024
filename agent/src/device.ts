import { EventEmitter } from 'node:events';
import {
  eventsTopic,
  MAX_DEVICE_PAYLOAD_BYTES,
  signDeviceJwt,
  telemetryTopic,
  validateCommand,
  validateEvent,
  validateTelemetry,
  type Command,
  type DeviceKeyType,
  type ExecutionEvent,
  type Telemetry,
} from '@kernex/shared';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { Clock } from './clock.js';
import { Enrollment } from './enrollment.js';
import { HttpClient } from './device-http-client.js';
import { IdentityStore, type DeviceKey } from './identity-store.js';
import { Outbox } from './outbox.js';
import { Backoff } from './session/backoff.js';
import { MqttSession } from './session/session.js';
import { SystemMetrics, type MetricsSource } from './telemetry/system-metrics.js';

/** What a command handler can do with the device. */
export interface DeviceContext {
  readonly deviceId: string;
  readonly stateDir: string;
  /** The server's public key (PEM), to check bundle signatures. */
  readonly serverPublicKey: string;
  /** The server's HTTP base URL. */
  readonly server: string;
  /** The device's one HTTP client (trusts KERNEX_CA_FILE): every HTTP request goes through it. */
  readonly http: HttpClient;
  readonly log: Logger;
  /** Queues an execution event durably and delivers it in order (store-and-forward). */
  report(event: ExecutionEvent): Promise<void>;
  /** A fresh `aud: kernex-http` JWT for HTTP calls (bundle downloads). */
  httpToken(): Promise<string>;
}

/**
 * The hook for acting on commands (DESIGN §3): the device calls `handle` once
 * per validated message on `kx/{id}/cmd` and acknowledges the message when it
 * resolves, so `handle` should return once the command is durably taken in
 * charge, not when the work is done. Delivery is at least once: a handler
 * must act on each (`executionId`, `type`) at most once.
 */
export interface CommandHandler {
  handle(command: Command, device: DeviceContext): Promise<void>;
  /** Called once the device is accepted and its session started: work a restart interrupted carries on. */
  resume?(device: DeviceContext): Promise<void>;
}

/** The default handler: logs the command and reports nothing (no bundle support in this build). */
export const IGNORE_COMMANDS: CommandHandler = {
  async handle(command, device) {
    device.log.info({ commandId: command.id, type: command.type, executionId: command.executionId }, 'command received; no handler installed');
  },
};

/** Installed bundles, name → version, for telemetry `b`. */
export interface BundleInventory {
  installed(): Record<string, string>;
}

/** Options of {@link Device}: the agent's config plus the pluggable parts. */
export interface DeviceOptions {
  server: string;
  stateDir: string;
  enrollToken?: string;
  keyType: DeviceKeyType;
  telemetryS: number;
  keepaliveS: number;
  /** Cap of the reconnect backoff, seconds (default 60). */
  reconnectMaxS?: number;
  /** CA to trust for mqtts:// and https:// (instead of the system store); when given, mqtts:// URLs are preferred. */
  ca?: Buffer;
  /** Use this broker URL instead of the ones the server hands out. */
  mqttUrl?: string;
  name?: string;
  /** Agent version, sent as telemetry `v` and in the online status. */
  version: string;
  log: Logger;
  commands?: CommandHandler;
  bundles?: BundleInventory;
  metrics?: MetricsSource;
  /**
   * Use this key instead of the one in the state directory (the simulator
   * hands each device one from its key pool).
   */
  key?: { privateKey: KeyObject; deviceId: string };
  /**
   * `disk` (default): key, identity and outbox live in `stateDir`, fsynced.
   * `memory`: nothing is written (the simulator: thousands of devices in one
   * process would otherwise measure the disk); requires `key`.
   */
  state?: 'disk' | 'memory';
  /** Hardware description sent at registration (default: this machine's). */
  hardware?: Record<string, unknown>;
  /** Lifetime of each MQTT JWT (default 12 h; renewed 10-20 min before it ends). */
  tokenTtlS?: number;
}

const DEFAULT_TOKEN_TTL_S = 12 * 3600;

/**
 * One device: its key and identity in the state directory, registration
 * (waiting while `pending`), the MQTT session, periodic telemetry, and the
 * outbox that delivers events in order after any outage. `kernex-agent` runs
 * one; the fleet simulator runs many in one process.
 *
 * Events: `registered` (StoredIdentity), `connected`, `disconnected`,
 * `telemetry` (Telemetry, after it was handed to the broker), `delivered` (OutboxEntry).
 */
export class Device extends EventEmitter {
  readonly clock = new Clock();
  private readonly store: IdentityStore;
  private readonly log: Logger;
  private readonly http: HttpClient;
  private key: DeviceKey | undefined;
  private enrollment: Enrollment | undefined;
  private outbox: Outbox | undefined;
  private session: MqttSession | undefined;
  private telemetryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private sleeping: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private draining = false;
  private drainAgain = false;

  constructor(private readonly opts: DeviceOptions) {
    super();
    this.log = opts.log.child({ mod: 'device' });
    this.store = new IdentityStore(opts.stateDir, this.log);
    this.http = new HttpClient({ ca: opts.ca });
  }

  get deviceId(): string | undefined {
    return this.key?.deviceId;
  }

  get connected(): boolean {
    return this.session?.connected === true;
  }

  /** Messages waiting in the outbox. */
  get pendingReports(): number {
    return this.outbox?.size ?? 0;
  }

  /**
   * Prepares the state directory, loads or makes the key, registers until the
   * server accepts the device, then keeps the session up. Resolves once the
   * device is accepted and its session started (not necessarily connected).
   */
  async start(): Promise<void> {
    const memory = this.opts.state === 'memory';
    if (memory) {
      if (!this.opts.key) throw new Error("state 'memory' needs an injected key");
      this.key = { ...this.opts.key, created: false };
      this.outbox = Outbox.inMemory(this.log);
    } else {
      await this.store.prepare();
      this.key = this.opts.key ? { ...this.opts.key, created: false } : await this.store.loadOrCreateKey(this.opts.keyType);
      this.log.info({ deviceId: this.key.deviceId, stateDir: this.opts.stateDir }, 'device identity loaded');
      this.outbox = await Outbox.open(this.store.file('outbox.jsonl'), this.log);
    }
    this.outbox.onAppend(() => void this.drain());
    this.enrollment = new Enrollment({
      server: this.opts.server,
      store: memory ? undefined : this.store,
      hardware: this.opts.hardware,
      key: this.key,
      clock: this.clock,
      log: this.log,
      enrollToken: this.opts.enrollToken,
      name: this.opts.name,
      http: this.http,
      onRegistered: (identity) => this.emit('registered', identity),
    });
    await this.enrollment.load();
    await this.enrollment.untilAccepted(() => this.stopped, (ms) => this.sleep(ms));
    if (this.stopped) return;
    this.startSession();
    this.opts.commands?.resume?.(this.context()).catch((err: unknown) => this.log.error({ err }, 'resuming interrupted commands failed'));
  }

  /** Orderly stop: offline status, DISCONNECT, outbox closed. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.telemetryTimer);
    this.sleeping?.wake();
    await this.session?.stop();
    await this.outbox?.close();
  }

  /** Cuts the MQTT link as a network fault would (no DISCONNECT; the will fires); the session reconnects by itself. */
  dropLink(): void {
    this.session?.dropLink();
  }

  /** Queues an execution event (store-and-forward); resolves once it is on disk. */
  async report(event: ExecutionEvent): Promise<void> {
    if (!this.outbox || !this.key) throw new Error('device not started');
    if (!validateEvent(event)) throw new Error(`invalid event: ${validateEvent.lastError()}`);
    const entry = await this.outbox.append(eventsTopic(this.key.deviceId), event);
    this.log.info({ seq: entry.seq, executionId: event.executionId, state: event.state, connected: this.connected }, 'event queued');
  }

  private context(): DeviceContext {
    return {
      deviceId: this.key!.deviceId,
      stateDir: this.opts.stateDir,
      serverPublicKey: this.enrollment!.identity!.serverPublicKey,
      server: this.opts.server,
      http: this.http,
      log: this.opts.log,
      report: (e) => this.report(e),
      httpToken: () => signDeviceJwt({ privateKey: this.key!.privateKey, deviceId: this.key!.deviceId, aud: 'kernex-http', now: this.clock.nowS(), ttlS: 3600 }),
    };
  }

  private startSession(): void {
    const key = this.key!;
    const ttlS = this.opts.tokenTtlS ?? DEFAULT_TOKEN_TTL_S;
    let sentFirstTelemetry = false;
    this.session = new MqttSession({
      deviceId: key.deviceId,
      urls: () => this.enrollment!.brokerUrls(this.opts.mqttUrl),
      token: async () => ({
        token: await signDeviceJwt({ privateKey: key.privateKey, deviceId: key.deviceId, aud: 'kernex-mqtt', now: this.clock.nowS(), ttlS }),
        expiresAtMs: Date.now() + ttlS * 1000,
      }),
      keepaliveS: this.opts.keepaliveS,
      backoff: new Backoff({ baseMs: 1000, capMs: Math.max(1000, (this.opts.reconnectMaxS ?? 60) * 1000) }),
      onlineStatus: { v: this.opts.version },
      ca: this.opts.ca,
      log: this.opts.log,
      onRefused: async () => {
        // Often the operator rejected us, or the clock drifted: registration tells which and corrects the clock.
        await this.enrollment!.registerOnce();
      },
      onMessage: (payload) => this.onCommand(payload),
    });
    this.session.on('connected', () => {
      this.emit('connected');
      void this.drain();
      if (!sentFirstTelemetry) {
        sentFirstTelemetry = true;
        void this.sendTelemetry();
      }
    });
    this.session.on('disconnected', () => this.emit('disconnected'));
    this.session.start();
    this.telemetryTimer = setInterval(() => void this.sendTelemetry(), this.opts.telemetryS * 1000);
  }

  private async onCommand(payload: Buffer): Promise<void> {
    let command: unknown;
    try {
      command = JSON.parse(payload.toString('utf8'));
    } catch {
      this.log.warn({ bytes: payload.length }, 'command is not JSON; dropped');
      return;
    }
    if (!validateCommand(command)) {
      this.log.warn({ problem: validateCommand.lastError() }, 'command is invalid; dropped');
      return;
    }
    await (this.opts.commands ?? IGNORE_COMMANDS).handle(command, this.context());
  }

  /** Delivers the outbox in order, one QoS 1 message at a time, while connected. */
  private async drain(): Promise<void> {
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = true;
    try {
      do {
        this.drainAgain = false;
        let entry;
        while (this.session?.connected && (entry = this.outbox?.peek())) {
          await this.session.publish(entry.topic, JSON.stringify(entry.payload), { qos: 1 });
          await this.outbox!.ack(entry.seq);
          this.log.debug({ seq: entry.seq }, 'outbox message delivered');
          this.emit('delivered', entry);
        }
      } while (this.drainAgain && this.session?.connected);
    } catch (err) {
      this.log.info({ err: (err as Error).message, pending: this.outbox?.size }, 'outbox delivery interrupted; resumes on reconnect');
    } finally {
      this.draining = false;
    }
  }

  private async sendTelemetry(): Promise<void> {
    if (!this.session?.connected || !this.key) return;
    try {
      const t: Telemetry = { ...(await (this.opts.metrics ??= new SystemMetrics()).sample()), ts: this.clock.nowS(), v: this.opts.version };
      // Every sample, `{}` included: the server corrects the device's `bundles` from it (DESIGN §5).
      if (this.opts.bundles) t.b = this.opts.bundles.installed();
      const payload = JSON.stringify(t);
      if (!validateTelemetry(t) || Buffer.byteLength(payload) > MAX_DEVICE_PAYLOAD_BYTES) {
        this.log.error({ problem: validateTelemetry.lastError(), bytes: payload.length }, 'telemetry sample is invalid; not sent');
        return;
      }
      // DESIGN §3: QoS 0 — a lost sample is replaced by the next one.
      await this.session.publish(telemetryTopic(this.key.deviceId), payload, { qos: 0 });
      this.log.debug({ bytes: payload.length }, 'telemetry sent');
      this.emit('telemetry', t);
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'telemetry not sent');
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleeping = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleeping = { timer, wake };
    });
  }
}
