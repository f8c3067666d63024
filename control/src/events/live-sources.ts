import type { Logger } from 'pino';
import type { OrchestratorChange } from '../orchestrator/orchestrator.js';
import type { DeploymentView } from '../services/deployments.service.js';
import type { DeviceView } from '../services/devices.service.js';
import type { LiveEventBus } from './event-bus.js';

/** The broker's presence events (the KernexBroker fits it). */
export interface PresenceSource {
  on(event: 'device:connect' | 'device:disconnect', listener: (deviceId: string) => void): unknown;
  off(event: 'device:connect' | 'device:disconnect', listener: (deviceId: string) => void): unknown;
}

export interface LiveSourcesOptions {
  bus: LiveEventBus;
  presence: PresenceSource;
  /** Reads a deployment's status, phase and counts after a change. */
  deployment(id: string): Promise<DeploymentView>;
  /** Reads a device after its installed bundles changed. */
  device(id: string): Promise<DeviceView>;
  log: Logger;
  /** Deployment and bundle changes of one id within this many ms make one event (default 250). */
  coalesceMs?: number;
}

/**
 * Turns what the server already sees into live events (DESIGN §6): the
 * broker's own connect/disconnect (presence, on the node the device is
 * connected to), operators' status changes, and the orchestrator's committed
 * changes. A burst of changes to one deployment (10,000 executions dispatched)
 * becomes one `deployment` event per `coalesceMs`, read from PostgreSQL, so
 * counts are always the database's.
 */
export class LiveSources {
  private readonly log: Logger;
  private readonly deployments = new Set<string>();
  private readonly bundles = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly onConnect = (id: string): void => this.presence(id, true);
  private readonly onDisconnect = (id: string): void => this.presence(id, false);

  constructor(private readonly opts: LiveSourcesOptions) {
    this.log = opts.log.child({ mod: 'live-events' });
  }

  start(): void {
    this.opts.presence.on('device:connect', this.onConnect);
    this.opts.presence.on('device:disconnect', this.onDisconnect);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.opts.presence.off('device:connect', this.onConnect);
    this.opts.presence.off('device:disconnect', this.onDisconnect);
    clearTimeout(this.timer);
    await this.flushing;
  }

  /** An operator accepted, rejected or decommissioned a device. */
  deviceChanged(d: DeviceView): void {
    this.opts.bus.publish({ type: 'device', data: { id: d.id, status: d.status, online: d.online } });
  }

  /** The orchestrator's `onChange`. */
  orchestratorChanged = (c: OrchestratorChange): void => {
    if (c.kind === 'execution') {
      this.opts.bus.publish({ type: 'execution', data: { id: c.executionId, deploymentId: c.deploymentId, deviceId: c.deviceId, state: c.state, error: c.error } });
      // DESIGN §5: `bundles` is set on succeeded and put back on rolled_back.
      if (c.state === 'succeeded' || c.state === 'rolled_back') this.later(this.bundles, c.deviceId);
    } else {
      this.later(this.deployments, c.deploymentId);
    }
  };

  private presence(id: string, online: boolean): void {
    this.opts.bus.publish({ type: 'device', data: { id, online, lastSeenAt: new Date().toISOString() } });
  }

  private later(set: Set<string>, id: string): void {
    if (this.stopped) return;
    set.add(id);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flushing = this.flushing.then(() => this.flush());
    }, this.opts.coalesceMs ?? 250);
  }

  private async flush(): Promise<void> {
    const deployments = [...this.deployments];
    const devices = [...this.bundles];
    this.deployments.clear();
    this.bundles.clear();
    for (const id of deployments) {
      try {
        const d = await this.opts.deployment(id);
        this.opts.bus.publish({ type: 'deployment', data: { id: d.id, status: d.status, phase: d.phase, counts: d.counts, total: d.total } });
      } catch (err) {
        this.log.warn({ err, deploymentId: id }, 'deployment event not built');
      }
    }
    for (const id of devices) {
      try {
        const d = await this.opts.device(id);
        this.opts.bus.publish({ type: 'device', data: { id: d.id, bundles: d.bundles } });
      } catch (err) {
        this.log.warn({ err, deviceId: id }, 'device event not built');
      }
    }
  }
}
