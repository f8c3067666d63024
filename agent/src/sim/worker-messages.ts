import type { DeviceKeyType, ExecutionState } from '@kernex/shared';

/** What every simulator worker needs to know (a plain object: it crosses a thread boundary). */
export interface WorkerSettings {
  server: string;
  enrollToken?: string;
  keyType: DeviceKeyType;
  telemetryS: number;
  keepaliveS: number;
  reconnectMaxS: number;
  mqttUrl?: string;
  /** The CA PEM devices trust (SimulationOptions.caFile, read once). */
  ca?: string;
  namePrefix: string;
  /** Devices per second this worker starts. */
  connectRate: number;
  downloadSample: number;
  failRate: number;
  /** Share of soaks that fail a health check (DESIGN §5 `soakS`). */
  soakFailRate: number;
  installMs: number;
  /** Mean seconds between link cuts per device; 0 = steady links. */
  flapMeanS: number;
  logLevel: string;
  version: string;
}

/** The share of the fleet one worker runs: device indexes `first..first+keys.length-1`. */
export interface WorkerSlice {
  first: number;
  /** PKCS#8 PEM per device, or undefined where the worker must make the key. */
  keys: (string | undefined)[];
}

/** Counters one worker reports; the simulation sums them. */
export interface WorkerStats {
  started: number;
  connected: number;
  /** Devices that were connected at least once. */
  everConnected: number;
  commands: number;
  telemetry: number;
  flaps: number;
  downloadedBytes: number;
  /** Executions by the latest state the device reported. */
  executions: Partial<Record<ExecutionState, number>>;
}

/** `steady`: stop cutting links (flapping ends); `stop`: disconnect every device and end. */
export type ToWorker = { type: 'stop' } | { type: 'steady' };

export type FromWorker =
  | { type: 'keys'; made: [number, string][]; deviceIds: [number, string][] }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'stopped'; stats: WorkerStats }
  | { type: 'error'; message: string };

export function emptyStats(): WorkerStats {
  return { started: 0, connected: 0, everConnected: 0, commands: 0, telemetry: 0, flaps: 0, downloadedBytes: 0, executions: {} };
}
