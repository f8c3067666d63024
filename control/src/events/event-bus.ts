import { EventEmitter } from 'node:events';
import type { DeviceStatus, ExecutionState } from '@kernex/shared';

/** A device changed: presence, status or installed bundles (only the fields that changed, and `id`). */
export interface DeviceChange {
  id: string;
  online?: boolean;
  lastSeenAt?: string;
  status?: DeviceStatus;
  bundles?: Record<string, string>;
}

/** An execution's new state, and its error if it has one. */
export interface ExecutionChange {
  id: string;
  deploymentId: string;
  deviceId: string;
  state: ExecutionState;
  error: string | null;
}

/** A deployment's status, phase and counts per execution state after a change. */
export interface DeploymentChange {
  id: string;
  status: string;
  phase: number;
  counts: Record<string, number>;
  total: number;
}

/** One event of `GET /api/v1/events` (DESIGN §6); `type` is the SSE event name. */
export type LiveEvent =
  | { type: 'device'; data: DeviceChange }
  | { type: 'execution'; data: ExecutionChange }
  | { type: 'deployment'; data: DeploymentChange };

/**
 * Where live events meet their listeners. This node's sources publish into it
 * and every SSE stream of this node subscribes to it. In a cluster (DESIGN §8)
 * a Redis-backed bus replaces the in-process one, so every node's streams see
 * what any node published; sources and streams do not change. A bus delivers
 * each event to every subscriber, in publish order per publisher, at most once.
 */
export interface LiveEventBus {
  publish(event: LiveEvent): void;
  /** Calls `listener` for every event published from now on; returns the unsubscribe. */
  subscribe(listener: (event: LiveEvent) => void): () => void;
  /** Resolves once every node's events reach the listeners subscribed so far (at once on a single node). */
  listening(): Promise<void>;
  close(): Promise<void>;
}

/** The single-node bus: an EventEmitter. A listener that throws never reaches the publisher or other listeners. */
export class InProcessEventBus implements LiveEventBus {
  private readonly emitter = new EventEmitter<{ event: [LiveEvent] }>();

  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {
    // One listener per open SSE stream: many operators are normal, not a leak.
    this.emitter.setMaxListeners(0);
  }

  publish(event: LiveEvent): void {
    for (const listener of this.emitter.listeners('event')) {
      try {
        listener(event);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  subscribe(listener: (event: LiveEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  async listening(): Promise<void> {}

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}
