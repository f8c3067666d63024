/** Messages between the swarm (main thread) and its worker threads. */

/** One MQTT client of the swarm. */
export interface SwarmClientSpec {
  clientId: string;
  username?: string;
  password?: string;
  /** Topic to subscribe to once connected (QoS 1). */
  subscribe?: string;
  /** This client's broker URL instead of the swarm's (no failover). */
  url?: string;
  /**
   * Broker URLs to use instead of the swarm's one URL. With a list the client
   * fails over as the agent does (agent/src/session/session.ts): after losing a
   * session it retries the same URL, and moves to the next one each time an
   * attempt fails, waiting the agent's full-jitter backoff (1 s base, 60 s cap)
   * before every attempt.
   */
  urls?: string[];
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
  | { type: 'messages'; items: Array<{ i: number; topic: string; at: number; bytes: number; tag?: string }> }
  /** Sessions of failover clients that closed, and when. */
  | { type: 'lost'; items: Array<{ i: number; at: number }> }
  /** Failover clients subscribed again after a loss (on whichever URL took them). */
  | { type: 'reconnected'; items: Array<{ i: number; at: number; url: string }> }
  | { type: 'failed'; i: number; reason: string }
  | { type: 'closed' }
  /** Sent once the worker has loaded, before it is told to start. */
  | { type: 'ready' };

export const now = (): number => performance.timeOrigin + performance.now();
