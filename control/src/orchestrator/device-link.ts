import type { EncodedCommand, ExecutionEvent } from '@kernex/shared';

/**
 * What the orchestrator needs of the broker (the KernexBroker fits it): hear
 * devices subscribe to their commands and report, publish commands at QoS 1. An interface so the
 * orchestrator's rules can be tested against a hand-written link.
 */
export interface DeviceLink {
  on(event: 'device:connect' | 'device:subscribed', listener: (deviceId: string) => void): unknown;
  on(event: 'device:event', listener: (deviceId: string, event: ExecutionEvent) => void): unknown;
  off(event: 'device:connect' | 'device:subscribed', listener: (deviceId: string) => void): unknown;
  off(event: 'device:event', listener: (deviceId: string, event: ExecutionEvent) => void): unknown;
  /** Publishes a checked command on `kx/{id}/cmd` at QoS 1; resolves once the broker has queued it. */
  publishEncoded(deviceId: string, command: EncodedCommand): Promise<void>;
}
