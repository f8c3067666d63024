/** Protocol types of DESIGN §3-§5, shared by the server, the agent and the simulator. */

/** Execution states (DESIGN §5), as the executions.state CHECK constraint lists them; named subsets are in execution-states.ts. */
export const EXECUTION_STATES = [
  'queued',
  'sent',
  'received',
  'downloading',
  'installing',
  'verifying',
  'succeeded',
  'failed',
  'rolled_back',
  'cancelled',
  'timed_out',
  'skipped',
] as const;
/** One execution state; a union, so a switch over it is checked for every state. */
export type ExecutionState = (typeof EXECUTION_STATES)[number];

/** Device registration statuses (DESIGN §2). */
export const DEVICE_STATUSES = ['pending', 'accepted', 'rejected', 'decommissioned'] as const;
/** One registration status; only `accepted` devices may connect (DESIGN §2). */
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

/** Bundle reference inside a `deploy` command. */
export interface BundleRef {
  id: string;
  name: string;
  version: string;
  sha256: string;
  size: number;
  url: string;
  signature: string;
}

interface CommandBase {
  id: string;
  executionId: string;
  issuedAt: string;
}

/** Install `bundle` (DESIGN §3); `timeoutS` bounds the device's own work, as the server times out the execution. */
export interface DeployCommand extends CommandBase {
  type: 'deploy';
  bundle: BundleRef;
  timeoutS: number;
}

/** Stop `executionId` if it has not finished installing (DESIGN §3). */
export interface CancelCommand extends CommandBase {
  type: 'cancel';
}

/** Switch back to the version kept before `executionId`: the one way out of `succeeded` (DESIGN §3). */
export interface RollbackCommand extends CommandBase {
  type: 'rollback';
  /** Bundle name to switch back to the version kept before `executionId`. */
  name: string;
}
/** A message on `kx/{id}/cmd`. */
export type Command = DeployCommand | CancelCommand | RollbackCommand;

/** A message on `kx/{id}/events`. */
export interface ExecutionEvent {
  executionId: string;
  state: ExecutionState;
  progress?: number;
  error?: string;
  /** When it happened on the device: ISO 8601 or milliseconds since the epoch. */
  ts: string | number;
}

/**
 * A message on `kx/{id}/telemetry`. Short keys, because links are metered;
 * any other numeric/string metric is accepted too.
 */
export interface Telemetry {
  /** Seconds since the epoch on the device. */
  ts?: number;
  /** CPU use, percent. */
  cpu?: number;
  /** Memory [used, total] in bytes. */
  mem?: [number, number];
  /** Root disk [free, total] in bytes. */
  disk?: [number, number];
  /** Load averages [1, 5, 15 min]. */
  load?: [number, number, number];
  /** Uptime in seconds. */
  up?: number;
  /** Agent version. */
  v?: string;
  /** Installed bundles: name → version. */
  b?: Record<string, string>;
  [metric: string]: unknown;
}

/** A message on `kx/{id}/status` (retained; the will says offline). */
export interface DeviceStatusMessage {
  state: 'online' | 'offline';
  [extra: string]: unknown;
}

/** Body of `POST /api/v1/devices/register`. */
export interface RegistrationRequest {
  publicKey: string;
  proof: string;
  enrollmentToken?: string;
  name?: string;
  hardware?: Record<string, unknown>;
  tags?: string[];
}

/** Answer of `POST /api/v1/devices/register`. */
export interface RegistrationResponse {
  deviceId: string;
  status: DeviceStatus;
  mqtt: string[];
  serverPublicKey: string;
  serverTime: string;
}

/** Largest MQTT payload a device may publish, in bytes; larger ones are refused at the broker. */
export const MAX_DEVICE_PAYLOAD_BYTES = 16 * 1024;
/** Largest `hardware` object at registration, serialised (DESIGN §2: at most 4 KiB). */
export const MAX_HARDWARE_BYTES = 4096;

/** `manifest.json` at the root of a bundle (DESIGN §4). */
export interface BundleManifest {
  name: string;
  /** Semantic version (semver.org 2.0.0). */
  version: string;
  /** Path of the install script inside the bundle; runs with the version's directory as working directory. */
  install: string;
  healthCheck?: { script: string; timeoutS?: number };
  description?: string;
}

/** Default time limit of a health check when the manifest gives none, seconds. */
export const DEFAULT_HEALTH_CHECK_TIMEOUT_S = 60;
