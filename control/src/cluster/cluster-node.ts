import type { Logger } from 'pino';
import type { Counter, Gauge, Registry } from 'prom-client';
import { createClusterNodeMetrics } from '../metrics.js';
import { StartupError } from '../errors.js';
import type { NodesStore } from '../store/nodes.pg.js';
import { DatabaseClock } from './database-clock.js';

/** A lease lasts this long past its last renewal, by the database's clock (DESIGN §8). */
export const LEASE_MS = 10_000;
/**
 * Renewal, sweep and leadership period. A dead node's lease ends at most
 * LEASE_MS after its last renewal, and a live node sweeps within RENEW_MS of
 * that: its devices show offline within 15 s; a free orchestrator lock is
 * taken within RENEW_MS.
 */
export const RENEW_MS = 2000;

export interface ClusterNodeOptions {
  id: string;
  store: NodesStore;
  log: Logger;
  registry: Registry;
  /** This node's connected devices now (the broker's gauge). */
  connections(): number;
  /** Leadership changed: start or stop driving deployments. */
  onLeadership(leader: boolean): void;
  /** The lease had lapsed (a long pause, a lost database): write this node's devices online again. */
  onLapsed(): void;
}

/**
 * This process as a node of a cluster: its lease in `nodes`, renewed every
 * RENEW_MS; the sweep that marks offline the devices of nodes whose lease has
 * ended; and the orchestrator's leadership, a PostgreSQL session advisory lock
 * tried on every renewal, so one node at a time leads and another takes over
 * once the leader's connection is gone.
 */
export class ClusterNode {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private leader = false;
  private failing = false;
  private readonly swept: Counter;
  private readonly failures: Counter;
  private readonly leaderGauge: Gauge;
  private readonly lapses: Counter;
  private readonly clock = new DatabaseClock();

  private constructor(
    private readonly o: ClusterNodeOptions,
    readonly generation: number,
    readonly startedAt: Date,
  ) {
    ({ swept: this.swept, failures: this.failures, lapses: this.lapses, leader: this.leaderGauge } = createClusterNodeMetrics(o.registry));
  }

  /** Takes the node id (refusing a second live node with it), claims a lease, and starts renewing. */
  static async start(o: ClusterNodeOptions): Promise<ClusterNode> {
    if (!(await o.store.lockNodeId(o.id))) {
      throw new StartupError(`KERNEX_NODE_ID ${o.id} is in use by another live node`);
    }
    const sentAt = Date.now();
    const { generation, startedAt } = await o.store.claim(o.id, LEASE_MS);
    const node = new ClusterNode(o, generation, startedAt);
    node.clock.sample(sentAt, Date.now(), startedAt);
    o.log.info({ nodeId: o.id, generation }, 'cluster node started');
    await node.round();
    node.timer = setInterval(() => {
      node.running = node.running.then(() => node.round());
    }, RENEW_MS);
    return node;
  }

  get id(): string {
    return this.o.id;
  }

  isLeader(): boolean {
    return this.leader;
  }

  /**
   * A time of this node's clock on the database's clock, so that what nodes write
   * (presence) compares across nodes whose clocks differ (DESIGN §8: a node whose
   * clock is off). Measured at every renewal, within half a round trip.
   */
  toDatabaseTime(at: Date): Date {
    return this.clock.toDatabaseTime(at);
  }

  /** Stops renewing, ends the lease and gives up leadership (the reserved connection is closed by the store's owner). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    this.setLeader(false);
    await this.o.store.expire(this.o.id, this.generation).catch((err: unknown) => this.o.log.warn({ err }, 'lease not ended at stop'));
  }

  private async round(): Promise<void> {
    const { store, log, id } = this.o;
    try {
      if (!(await store.holdsNodeId(id)) && !(await store.lockNodeId(id))) {
        // The reserved connection was lost and another process took this id meanwhile.
        log.error({ nodeId: id }, 'node id taken by another process after a lost database connection');
      }
      const sentAt = Date.now();
      const renewed = await store.renew(id, this.generation, LEASE_MS, this.o.connections());
      this.clock.sample(sentAt, Date.now(), renewed.databaseNow);
      if (!renewed.owned) log.error({ nodeId: id, generation: this.generation }, 'lease row taken by a later start of this node id');
      if (renewed.lapsed) {
        this.lapses.inc();
        log.warn({ nodeId: id }, 'lease had lapsed; writing this node’s devices online again');
        this.o.onLapsed();
      }
      this.setLeader(await store.tryLead());
      const swept = await store.sweep();
      if (swept > 0) {
        this.swept.inc(swept);
        log.info({ devices: swept }, 'devices of nodes without a live lease marked offline');
      }
      if (this.failing) log.info({ nodeId: id }, 'lease renewed again');
      this.failing = false;
    } catch (err) {
      this.failures.inc();
      // Without the database this node cannot know it still leads: stop, the lock may be gone.
      this.setLeader(false);
      if (!this.failing) log.warn({ err, nodeId: id }, 'lease renewal failed; retrying');
      this.failing = true;
    }
  }

  private setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.leaderGauge.set(leader ? 1 : 0);
    this.o.log.info({ nodeId: this.o.id }, leader ? 'orchestrator leadership taken' : 'orchestrator leadership given up');
    try {
      this.o.onLeadership(leader);
    } catch (err) {
      this.o.log.error({ err }, 'leadership change failed');
    }
  }
}
