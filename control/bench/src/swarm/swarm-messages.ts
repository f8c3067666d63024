/** Messages between the swarm (main thread) and its worker threads. */

/** One MQTT client of the swarm. */
export interface SwarmClientSpec {
  clientId: string;
  username?: string;
  password?: string;
  /** Topic to subscribe to once connected (QoS 1). */
  subscribe?: string;
}

export interface StartMessage {
  type: 'start';
  url: string;
  clients: SwarmClientSpec[];
  /** CONNECTs per second for this worker; 0 = as fast as possible. */
  rate: number;
  keepalive: number;
  clean: boolean;
}

export type ToWorker = StartMessage | { type: 'close' };

/** Absolute times in ms since the epoch, with sub-ms precision (performance.timeOrigin + now()). */
export type FromWorker =
  | { type: 'connected'; items: Array<{ i: number; sentAt: number; ackAt: number }> }
  | { type: 'subscribed'; items: number[] }
  | { type: 'messages'; items: Array<{ i: number; topic: string; at: number; bytes: number }> }
  | { type: 'failed'; i: number; reason: string }
  | { type: 'closed' };

export const now = (): number => performance.timeOrigin + performance.now();
