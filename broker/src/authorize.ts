import {
  cmdTopic,
  DEVICE_PUBLISH_CHANNELS,
  findUnstorable,
  MAX_DEVICE_PAYLOAD_BYTES,
  parseTopic,
  validateEvent,
  validateStatus,
  validateTelemetry,
  type DeviceChannel,
  type Validator,
} from '@kernex/shared';
import type { AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes';
import type { Logger } from 'pino';
import type { BrokerMetrics } from './metrics.js';
import type { RefusalLog } from './refusal-log.js';

/**
 * Where refused publishes go. MQTT 3.1.1 cannot tell a client its PUBLISH was
 * refused: the server "MUST either make a positive acknowledgement ... or
 * close the Network Connection" [MQTT-3.3.5-2]. We acknowledge and drop, so a
 * device with one bad message keeps its session; the topic starts with `$`,
 * which no wildcard matches [MQTT-4.7.2-1], and no client may subscribe to it.
 */
export const DROPPED_TOPIC = '$kernex/dropped';

const VALIDATORS: Partial<Record<DeviceChannel, Validator<unknown>>> = {
  events: validateEvent,
  telemetry: validateTelemetry,
  status: validateStatus,
};

/**
 * A publish that passed the ACL and its schema. When it returns a promise,
 * the publish is acknowledged (PUBACK) only once it resolves, and not at all
 * if the connection closed meanwhile (the device sends it again).
 */
export type OnDeviceMessage = (deviceId: string, channel: DeviceChannel, payload: unknown, client: Client) => void | Promise<void>;

/** What the ACL hooks need, passed in so the hooks stay pure and a test can hand its own. */
export interface AuthorizeDeps {
  metrics: BrokerMetrics;
  /** Counts and logs each refusal (debug, with a rate-limited warn). */
  refusals: RefusalLog;
  log: Logger;
  /** True when the device has another live connection than `client` (its will is stale). */
  takenOver(deviceId: string, client: Client): boolean;
  onMessage: OnDeviceMessage;
}

/**
 * The per-device ACL and payload validation of DESIGN §3 as Aedes hooks:
 * a device publishes only to its own `events`, `telemetry`, `status`, with a
 * JSON payload valid against the shared schema and at most
 * MAX_DEVICE_PAYLOAD_BYTES; it subscribes only to its own `cmd`. Refusals are
 * counted per reason and logged, never thrown.
 */
export function createAuthorizers(deps: AuthorizeDeps) {
  const { metrics, refusals, log } = deps;

  const drop = (packet: PublishPacket, clientId: string | undefined, reason: string, detail?: string): void => {
    refusals.refused(clientId ?? '', reason, 'mqtt publish dropped', { clientId, topic: packet.topic, detail });
    packet.topic = DROPPED_TOPIC;
    packet.retain = false;
    packet.payload = Buffer.alloc(0);
  };

  function authorizePublish(client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void): void {
    // `client` is null only for a will Aedes kept from an earlier run; devices re-announce themselves.
    if (!client) {
      drop(packet, undefined, 'orphan_will');
      return callback(null);
    }
    const deviceId = client.id;
    const topic = parseTopic(packet.topic);
    if (!topic || topic.deviceId !== deviceId || !DEVICE_PUBLISH_CHANNELS.includes(topic.channel)) {
      drop(packet, deviceId, 'acl_publish');
      return callback(null);
    }
    // A will published because a newer connection took the session over: the device is not offline.
    if (client.closed && deps.takenOver(deviceId, client)) {
      drop(packet, deviceId, 'stale_will');
      return callback(null);
    }
    const raw = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (raw.length > MAX_DEVICE_PAYLOAD_BYTES) {
      drop(packet, deviceId, 'payload_too_large', `${raw.length} bytes`);
      return callback(null);
    }
    let payload: unknown;
    try {
      payload = JSON.parse(raw.toString('utf8'));
    } catch {
      drop(packet, deviceId, 'invalid_json');
      return callback(null);
    }
    // Strings PostgreSQL cannot store (NUL, lone surrogates; JSON.parse makes real ones of `\u0000` escapes), keys too (DESIGN §3).
    const unstorable = findUnstorable(payload);
    if (unstorable) {
      drop(packet, deviceId, unstorable.reason, unstorable.path);
      return callback(null);
    }
    const validate = VALIDATORS[topic.channel]!;
    if (!validate(payload)) {
      drop(packet, deviceId, 'invalid_payload', validate.lastError());
      return callback(null);
    }
    metrics.messagesIn.inc({ channel: topic.channel });
    let stored: void | Promise<void> = undefined;
    try {
      stored = deps.onMessage(deviceId, topic.channel, payload, client);
    } catch (err) {
      log.error({ err, deviceId, channel: topic.channel }, 'device message listener failed');
    }
    if (!stored) return callback(null);
    stored.then(
      () => {
        if (!client.closed) callback(null);
      },
      (err: Error) => {
        log.error({ err, deviceId, channel: topic.channel }, 'device message not stored; closing the connection');
        callback(err);
      },
    );
  }

  function authorizeSubscribe(client: Client, sub: Subscription, callback: (error: Error | null, subscription?: Subscription | null) => void): void {
    if (sub.topic !== cmdTopic(client.id)) {
      refusals.refused(client.id, 'acl_subscribe', 'mqtt subscription refused', { clientId: client.id, topic: sub.topic });
      return callback(null, null); // SUBACK 0x80 for this one [MQTT-3.9.3-2]
    }
    callback(null, { ...sub, qos: Math.min(sub.qos, 1) as Subscription['qos'] });
  }

  function authorizeForward(_client: Client, packet: AedesPublishPacket): AedesPublishPacket {
    metrics.messagesOut.inc();
    return packet;
  }

  return { authorizePublish, authorizeSubscribe, authorizeForward };
}
