import { EventEmitter } from 'node:events';
import { format } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { cmdTopic, statusTopic } from '@kernex/shared';
import type { Logger } from 'pino';
import { Backoff } from './backoff.js';

/** A fresh MQTT password and when it stops being valid. */
export interface SessionToken {
  token: string;
  /** Local time (ms) at which the broker stops accepting it. */
  expiresAtMs: number;
}

/** Options of {@link MqttSession}. */
export interface SessionOptions {
  deviceId: string;
  /** Broker URLs to try, in order of preference; read before each attempt (registration may change them). */
  urls(): string[];
  /** Signs a fresh `aud: kernex-mqtt` JWT; called before every CONNECT. */
  token(): Promise<SessionToken>;
  keepaliveS: number;
  /** Extra fields of the retained `online` status (agent version, ...). */
  onlineStatus?: Record<string, unknown>;
  /** CA certificate(s) for mqtts:// and wss://; when set, only this CA is trusted. */
  ca?: Buffer;
  log: Logger;
  backoff?: Backoff;
  /** Called when the broker refuses the credentials (CONNACK 4/5), before backing off. */
  onRefused?(): Promise<void>;
  /**
   * Called for each message on the device's `cmd` topic. The PUBACK is sent
   * when the returned promise settles, so a command is acknowledged only
   * once the handler has taken it in charge.
   */
  onMessage?(payload: Buffer): Promise<void>;
}

/** A connection that lived this long is "stable": the next failure starts from the smallest backoff window. */
const STABLE_MS = 30_000;
/** Reconnect with a fresh token this long (plus jitter) before the current one expires. */
const RENEW_MARGIN_MS = 10 * 60_000;
/** Longest an orderly stop waits for the broker to acknowledge the offline status. */
const STOP_LIMIT_MS = 3000;

/** Connection return codes MQTT 3.1.1 uses to refuse credentials [MQTT-3.2.2-3]. */
const REFUSED = new Set([4, 5]);

/**
 * The device's persistent MQTT session (DESIGN §2, §3): clean: false with
 * clientId = username = deviceId and a JWT password; QoS 1 subscription to
 * its `cmd` topic; a retained `online` status and an `offline` will.
 *
 * MQTT.js's own reconnect (a fixed `reconnectPeriod`) is off: this class
 * opens one MQTT.js client per attempt, with a fresh token each time, and
 * waits a full-jitter backoff between failed attempts, so a fleet does not
 * return in one instant after a server restart. The broker checks the
 * password only at CONNECT, so before the token expires the session
 * reconnects on purpose with a new one (DISCONNECT first: no will is sent).
 *
 * Events: `connected` (sessionPresent: boolean), `disconnected`.
 */
export class MqttSession extends EventEmitter {
  private client: MqttClient | undefined;
  private connectedAt = 0;
  private urlIndex = 0;
  private stopping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private readonly mqttLog: Logger;

  constructor(private readonly opts: SessionOptions) {
    super();
    this.log = opts.log.child({ mod: 'session' });
    this.mqttLog = opts.log.child({ mod: 'mqtt.js' });
    this.backoff = opts.backoff ?? new Backoff({ baseMs: 1000, capMs: 60_000 });
  }

  /** True between CONNACK and the connection's close. */
  get connected(): boolean {
    return this.client?.connected === true;
  }

  start(): void {
    this.stopping = false;
    void this.attempt();
  }

  /**
   * Publishes on the current connection; rejects when there is none or it
   * closes before the broker acknowledges (QoS 1), so the caller can retry.
   */
  async publish(topic: string, payload: string, options: { qos: 0 | 1; retain?: boolean } = { qos: 1 }): Promise<void> {
    const client = this.client;
    if (!client?.connected) throw new Error('not connected');
    await new Promise<void>((resolve, reject) => {
      const onClose = (): void => reject(new Error('connection closed before the broker acknowledged'));
      client.once('close', onClose);
      client.publish(topic, payload, { qos: options.qos, retain: options.retain ?? false }, (err) => {
        client.off('close', onClose);
        if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Orderly stop: retained `offline` status, DISCONNECT (so the will is not needed), no reconnect. */
  /**
   * Cuts the link as a network fault would: the socket is destroyed without
   * DISCONNECT, so the broker publishes the will and the session reconnects
   * with its usual backoff. The fleet simulator's flaky links use it.
   */
  dropLink(): void {
    this.client?.stream?.destroy();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.renewTimer);
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      const offline = this.publish(statusTopic(this.opts.deviceId), JSON.stringify({ state: 'offline' }), { qos: 1, retain: true });
      const limit = new Promise<void>((resolve) => setTimeout(resolve, STOP_LIMIT_MS).unref());
      await Promise.race([offline.catch((err: Error) => this.log.warn({ err: err.message }, 'offline status not acknowledged')), limit]);
    }
    await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
  }

  private async attempt(): Promise<void> {
    if (this.stopping) return;
    const urls = this.opts.urls();
    const url = urls[this.urlIndex % Math.max(urls.length, 1)];
    if (!url) {
      this.log.error('no broker URL to connect to');
      return this.retryLater();
    }
    let token: SessionToken;
    try {
      token = await this.opts.token();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot sign a session token');
      return this.retryLater();
    }
    if (this.stopping) return;

    const { deviceId } = this.opts;
    const options: IClientOptions = {
      clientId: deviceId,
      username: deviceId,
      password: token.token,
      clean: false,
      protocolVersion: 4,
      keepalive: this.opts.keepaliveS,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      resubscribe: false,
      will: { topic: statusTopic(deviceId), payload: Buffer.from(JSON.stringify({ state: 'offline' })), qos: 1, retain: true },
      log: (...args: unknown[]) => this.mqttLog.trace({ detail: format(...args) }, 'mqtt.js'),
      ...(this.opts.ca ? { ca: this.opts.ca, rejectUnauthorized: true } : {}),
    };
    this.log.debug({ url, attempt: this.backoff.attempts }, 'connecting');
    const client = mqtt.connect(url, options);
    this.client = client;
    let refused = false;

    client.handleMessage = (packet, done) => {
      const handler = this.opts.onMessage;
      if (!handler || packet.topic !== cmdTopic(deviceId)) return done();
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      handler(payload).then(
        () => done(),
        (err: Error) => {
          this.log.error({ err: err.message }, 'command handler failed');
          done();
        },
      );
    };

    client.on('connect', (connack) => {
      this.connectedAt = Date.now();
      this.log.info({ url, sessionPresent: connack.sessionPresent }, 'connected');
      this.scheduleRenewal(client, token.expiresAtMs);
      void this.afterConnect(client, connack.sessionPresent);
    });
    client.on('error', (err: Error & { code?: number | string }) => {
      if (typeof err.code === 'number' && REFUSED.has(err.code)) {
        refused = true;
        this.log.warn({ url, returnCode: err.code }, 'broker refused the device; will register again and retry');
      } else if (err.code === 3) {
        // CONNACK 3: the server is up but cannot check credentials now (its database is away).
        this.log.warn({ url }, 'broker unavailable; retrying');
      } else {
        this.log.debug({ url, err: err.message }, 'connection error');
      }
    });
    client.once('close', () => {
      clearTimeout(this.renewTimer);
      const wasConnected = this.connectedAt > 0;
      const lived = wasConnected ? Date.now() - this.connectedAt : 0;
      this.connectedAt = 0;
      client.end(true);
      if (this.client === client) this.client = undefined;
      if (wasConnected) {
        this.log[this.stopping ? 'info' : 'warn']({ url, connectedMs: lived }, 'disconnected');
        this.emit('disconnected');
      } else if (!refused) {
        this.log.info({ url }, 'broker unreachable');
      }
      if (this.stopping) return;
      if (lived >= STABLE_MS) this.backoff.reset();
      if (!wasConnected) this.urlIndex++;
      void (refused && this.opts.onRefused ? this.opts.onRefused().catch(() => {}) : Promise.resolve()).then(() => this.retryLater());
    });
  }

  private async afterConnect(client: MqttClient, sessionPresent: boolean): Promise<void> {
    const { deviceId } = this.opts;
    try {
      // With a session present the broker kept the subscription [MQTT-3.2.2-2]; skip the bytes.
      if (!sessionPresent) await client.subscribeAsync(cmdTopic(deviceId), { qos: 1 });
      await client.publishAsync(statusTopic(deviceId), JSON.stringify({ state: 'online', ...this.opts.onlineStatus }), { qos: 1, retain: true });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'session setup failed; reconnecting');
      client.end(true);
      return;
    }
    if (client === this.client && client.connected) this.emit('connected', sessionPresent);
  }

  private scheduleRenewal(client: MqttClient, expiresAtMs: number): void {
    clearTimeout(this.renewTimer);
    const jitter = Math.random() * RENEW_MARGIN_MS;
    const inMs = Math.max(1000, expiresAtMs - Date.now() - RENEW_MARGIN_MS - jitter);
    this.renewTimer = setTimeout(() => {
      this.log.info('session token expires soon; reconnecting with a new one');
      // DISCONNECT, not a socket drop: the broker discards the will [MQTT-3.1.2-10].
      client.end(false, {}, () => {});
    }, inMs);
    this.renewTimer.unref();
  }

  private retryLater(): void {
    if (this.stopping) return;
    const delay = this.backoff.next();
    this.log.info({ delayMs: delay, attempt: this.backoff.attempts }, 'reconnecting after backoff');
    this.retryTimer = setTimeout(() => void this.attempt(), delay);
  }
}
