/**
 * MQTT topic names of the device protocol (DESIGN §3). Every topic string in
 * Kernex is built here and nowhere else.
 */

/** The four per-device channels. */
export type DeviceChannel = 'cmd' | 'events' | 'telemetry' | 'status';

/** Channels a device may publish to (DESIGN §3 ACL). */
export const DEVICE_PUBLISH_CHANNELS: readonly DeviceChannel[] = ['events', 'telemetry', 'status'];

/** The one channel a device may subscribe to. */
export const DEVICE_SUBSCRIBE_CHANNEL: DeviceChannel = 'cmd';

const PREFIX = 'kx';

/** `kx/{id}/cmd`: server → device commands, QoS 1. */
export const cmdTopic = (deviceId: string): string => `${PREFIX}/${deviceId}/cmd`;
/** `kx/{id}/events`: device → server progress of commands, QoS 1. */
export const eventsTopic = (deviceId: string): string => `${PREFIX}/${deviceId}/events`;
/** `kx/{id}/telemetry`: device → server metrics, QoS 0. */
export const telemetryTopic = (deviceId: string): string => `${PREFIX}/${deviceId}/telemetry`;
/** `kx/{id}/status`: retained online/offline state, also the will. */
export const statusTopic = (deviceId: string): string => `${PREFIX}/${deviceId}/status`;

/** A topic split into its device and channel, or `null` when it is not a device topic. */
export interface ParsedTopic {
  deviceId: string;
  channel: DeviceChannel;
}

const CHANNELS = new Set<string>(['cmd', 'events', 'telemetry', 'status']);

/**
 * Splits `kx/{id}/{channel}`. Returns `null` for anything else, including
 * topics with wildcards or extra levels, so callers can refuse them.
 */
export function parseTopic(topic: string): ParsedTopic | null {
  const parts = topic.split('/');
  if (parts.length !== 3 || parts[0] !== PREFIX) return null;
  const [, deviceId, channel] = parts as [string, string, string];
  if (deviceId === '' || deviceId.includes('+') || deviceId.includes('#')) return null;
  if (!CHANNELS.has(channel)) return null;
  return { deviceId, channel: channel as DeviceChannel };
}
