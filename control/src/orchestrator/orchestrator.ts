import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { EncodedCommand, type CancelCommand, type Command, type CommandIdentity, type DeltaRef, type ExecutionEvent, type RollbackCommand, type SharedDeploy } from '@kernex/shared';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { OrchestratorMetrics } from '../metrics.js';
import { inSavepoint, type Db } from '../store/database.js';
import type { BundleForCommand, DeploymentRow, DeploymentsStore, ExecutionRow } from '../store/deployments.pg.js';
import type { DeviceLink } from './device-link.js';
import type { AppliedEvent, EventWriter } from './event-writer.js';
import { pastThreshold } from './rules.js';

/**
 * Executions dispatched per deployment by a kick's first tick. A tick that fills
 * its batch runs again at once, and its commands go out while the next batch's
 * transaction runs: a large fleet's first commands leave after one small UPDATE,
 * not after one UPDATE of every row (10,000 rows: ~300 ms in PostgreSQL with the
 * server idle).
 */
const DISPATCH_BATCH = 1000;
/**
 * Each tick that fills its batch doubles the next one, up to this many times
 * the first (1,000, 2,000, 4,000, 4,000, ...). A tick is a chain of round trips
 * to PostgreSQL, and while the previous batch is being delivered each one waits
 * for a busy event loop: 10,000 devices took ten such chains, and now take four.
 * The first batch stays small so the first commands still leave early.
 */
const BATCH_GROWTH = 4;
/** Devices healed per transaction (and per look-up of what they are owed) after a Redis outage. */
const HEAL_BATCH = 1000;

/**
 * Commands handed to the broker per turn of the event loop. Handing a batch at
 * once queued 1,000 deliveries (socket writes) ahead of everything else: the
 * next tick's statements waited ~60 ms for each batch's delivery, so ticks and
 * delivery took turns instead of overlapping.
 */
const HAND_SLICE = 100;

/** What the orchestrator needs of the deployments store (store/deployments.pg.ts). */
export type OrchestratorRepository = Pick<
  DeploymentsStore,
  | 'transaction' | 'tryOrchestratorLock' | 'active' | 'get' | 'timeOut' | 'tally' | 'cancelQueued' | 'setDeployment'
  | 'requestRollbacks' | 'takeRollbacks' | 'bundleOf' | 'dispatch' | 'requestCancels' | 'owedTo' | 'pool'
>;

export interface OrchestratorOptions {
  store: OrchestratorRepository;
  link: DeviceLink;
  log: Logger;
  metrics: OrchestratorMetrics;
  /** The blob URL devices are told for a bundle (PublicEndpoints.bundleBlobUrl). */
  bundleUrl(bundleId: string): string;
  /** The `delta` of each device's deploy command, when it gets one (DeltaService.refsFor; DESIGN §4); given the pool. */
  deltaRefs?(db: Db, bundle: BundleForCommand, deviceIds: readonly string[]): Promise<Map<string, DeltaRef>>;
  /** Period of the tick loop, ms (timeouts, phase waits; events and new deployments tick at once). */
  tickMs?: number;
  /** Executions dispatched per deployment by a kick's first tick (default DISPATCH_BATCH); later ticks grow to BATCH_GROWTH times it. */
  dispatchBatch?: number;
  /** Where device events are stored (before their PUBACK); a commit that moved an execution ticks at once. */
  events?: EventWriter;
  /** Told every committed change (never throws into the orchestrator: errors are logged). */
  onChange?(change: OrchestratorChange): void;
  /**
   * In a cluster (DESIGN §8): only the leader ticks; on another node a kick
   * (an event stored here, a deployment made here) wakes the leader instead.
   * Absent on a single node, which always leads.
   */
  leadership?: { isLeader(): boolean; wake(): void };
}

/**
 * A change the orchestrator made or accepted, told after its transaction
 * committed: the source of the live event stream's `execution` and
 * `deployment` events (DESIGN §6). A deployment change carries only its id;
 * the listener reads the counts it needs, coalescing bursts.
 */
export type OrchestratorChange =
  | { kind: 'execution'; executionId: string; deploymentId: string; deviceId: string; state: ExecutionEvent['state']; error: string | null }
  | { kind: 'deployment'; deploymentId: string };

/** A command checked and serialised, and the device it goes to. */
interface Outbound {
  deviceId: string;
  command: EncodedCommand;
}

/**
 * Drives deployments (DESIGN §5). All state is in PostgreSQL: a tick, under one
 * advisory lock, times out stalled executions, aborts past the failure
 * threshold (cancelling queued executions and asking rollbacks), releases
 * phases, dispatches queued executions within `maxConcurrent`, and completes
 * deployments. Commands are published after the transaction commits; one lost
 * in between (a crash) is published again when its device connects, and the
 * agent acts on each execution at most once. Events are stored by the
 * {@link EventWriter}, which moves executions forward only.
 */
export class Orchestrator {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private readonly published: Counter<'type'>;
  private readonly refused: Counter<'type'>;
  /** The commands being handed to the broker: every publish waits its turn here, so commands leave in the order they were made. */
  private handing: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;
  /** The next batch of a deployment whose last tick filled its batch; none: the first size. */
  private readonly nextBatch = new Map<string, number>();
  private readonly onSubscribed = (deviceId: string): void => void this.healDevice(deviceId);
  private readonly onApplied = (changes: readonly AppliedEvent[]): void => {
    const deployments = new Set<string>();
    for (const c of changes) {
      this.tell({ kind: 'execution', ...c });
      deployments.add(c.deploymentId);
    }
    for (const deploymentId of deployments) this.tell({ kind: 'deployment', deploymentId });
    this.kick();
  };

  constructor(private readonly opts: OrchestratorOptions) {
    this.log = opts.log.child({ mod: 'orchestrator' });
    this.published = opts.metrics.published;
    this.refused = opts.metrics.refused;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    // Not at 'device:connect': a new session subscribes after CONNACK, and a publish
    // before its subscription is lost. 'device:subscribed' fires for a new SUBSCRIBE
    // and for a subscription restored with a persistent session.
    this.opts.link.on('device:subscribed', this.onSubscribed);
    this.opts.events?.on('applied', this.onApplied);
    this.timer = setInterval(() => {
      if (this.leads()) this.kick();
    }, this.opts.tickMs ?? 1000);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.opts.link.off('device:subscribed', this.onSubscribed);
    this.opts.events?.off('applied', this.onApplied);
    await this.ticking;
  }

  /** Runs a tick soon; ticks never overlap, and a kick during one runs another after it. */
  kick(): void {
    if (this.stopped) return;
    if (!this.leads()) {
      this.opts.leadership!.wake();
      return;
    }
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = (async () => {
      // Each tick's commands are handed to the broker in order, a slice per turn of the event
      // loop, while the next tick runs; the broker's completion callbacks are awaited here.
      const publishing: Array<Promise<void>> = [];
      do {
        this.again = false;
        try {
          publishing.push((await this.step()).published);
        } catch (err) {
          // Its transaction rolled back: the batch sizes it grew to are not earned.
          this.nextBatch.clear();
          this.log.error({ err }, 'orchestrator tick failed');
        }
      } while (this.again && !this.stopped);
      // The next kick starts small again (also after a lost lock or leadership, or a cancel).
      this.nextBatch.clear();
      await Promise.all(publishing);
    })().finally(() => {
      this.ticking = undefined;
    });
  }

  private leads(): boolean {
    return !this.opts.leadership || this.opts.leadership.isLeader();
  }

  /** Resolves after the tick running now, if any (tests). */
  settled(): Promise<void> {
    return this.ticking ?? Promise.resolve();
  }

  /** One pass over every deployment with work left. Idempotent: running it twice changes nothing more. */
  async tick(): Promise<void> {
    await (await this.step()).published;
  }

  /** A tick's transaction; resolves once it has committed and its commands are handed to the broker. */
  private async step(): Promise<{ published: Promise<void> }> {
    const outbound: Outbound[] = [];
    const changed: string[] = [];
    await this.opts.store.transaction(async (tx) => {
      // Both statements at once (one round trip): reading the active ones is harmless when the lock is not ours.
      const [locked, active] = await Promise.all([this.opts.store.tryOrchestratorLock(tx), this.opts.store.active(tx)]);
      if (!locked) return; // Another server's orchestrator is ticking.
      for (const id of active) {
        const d = await this.opts.store.get(tx, id, true);
        if (!d) continue;
        const out = await this.advance(tx, d, () => changed.push(id));
        outbound.push(...out);
      }
    });
    for (const deploymentId of changed) this.tell({ kind: 'deployment', deploymentId });
    return { published: this.publish(outbound) };
  }

  /** `changed` is called (at most once) when the deployment's status, phase or counts changed. */
  private async advance(tx: Db, d: DeploymentRow, onChanged: () => void): Promise<Outbound[]> {
    let told = false;
    const changed = (): void => {
      if (!told) onChanged();
      told = true;
    };
    const store = this.opts.store;
    const log = this.log.child({ deploymentId: d.id });
    const out: Outbound[] = [];
    // Sent together, run in order on the transaction's connection: the tally counts what timed out.
    // (A tick of a large deployment is a chain of small statements; each round trip waits for an
    // event loop busy delivering the previous batch, so statements that can go together do.)
    const [timedOut, tally] = await Promise.all([store.timeOut(tx, d), store.tally(tx, d.id, d.phase)]);
    if (timedOut) log.info({ timedOut }, 'executions timed out');
    if (timedOut) changed();
    let t = tally;
    const { rollout } = d;

    if (d.status === 'running' && pastThreshold(t.failures, t.released, rollout.maxFailurePercent)) {
      // DESIGN §5: over the threshold the deployment stops, and heals.
      const reason = `${t.failures} of ${t.released} executions failed, over maxFailurePercent ${rollout.maxFailurePercent}`;
      const cancelled = await store.cancelQueued(tx, d.id, 'deployment aborted');
      await store.setDeployment(tx, d.id, { status: 'aborted', reason });
      d = { ...d, status: 'aborted' };
      changed();
      log.warn({ failures: t.failures, released: t.released, cancelled, rollback: rollout.rollbackOnAbort }, 'deployment aborted');
    }
    if (d.status === 'aborted' && rollout.rollbackOnAbort) {
      // Also executions that succeed after the abort: the fleet goes back as one.
      await store.requestRollbacks(tx, d.id);
      const bundle = await store.bundleOf(tx, d.id);
      for (const e of await store.takeRollbacks(tx, d.id)) this.encode(out, e.deviceId, this.rollbackCommand(e, bundle?.name ?? d.bundleName));
      if (out.length) changed();
    }
    if (d.status !== 'running') return out;

    // Phases: the next starts when every released execution has ended and waitS has passed.
    const lastPhase = rollout.phases.length - 1;
    if (t.unendedReleased === 0 && d.phase < lastPhase) {
      const settledAt = d.phaseSettledAt ?? new Date();
      if (!d.phaseSettledAt) await store.setDeployment(tx, d.id, { phaseSettledAt: settledAt });
      const waitS = rollout.phases[d.phase]?.waitS ?? 0;
      if (Date.now() >= settledAt.getTime() + waitS * 1000) {
        await store.setDeployment(tx, d.id, { phase: d.phase + 1, phaseSettledAt: null });
        d = { ...d, phase: d.phase + 1 };
        changed();
        log.info({ phase: d.phase }, 'phase released');
        t = await store.tally(tx, d.id, d.phase);
      }
    }

    const slots = rollout.maxConcurrent === null ? Number.MAX_SAFE_INTEGER : rollout.maxConcurrent - t.inFlight;
    const firstBatch = this.opts.dispatchBatch ?? DISPATCH_BATCH;
    const batchSize = this.nextBatch.get(d.id) ?? firstBatch;
    const limit = Math.min(slots, batchSize);
    // The bundle is read with the batch (one round trip), when there is room for one.
    const [sent, bundle] = limit > 0 ? await Promise.all([store.dispatch(tx, d.id, d.phase, limit), store.bundleOf(tx, d.id)]) : [[], undefined];
    if (sent.length === batchSize) {
      this.again = true; // more may be queued: tick again at once, with a larger batch
      this.nextBatch.set(d.id, Math.min(batchSize * 2, firstBatch * BATCH_GROWTH));
    } else this.nextBatch.delete(d.id);
    if (sent.length) {
      changed();
      if (!bundle) throw new Error(`deployment ${d.id} has lost its bundle`);
      const deltas = await this.deltasFor(tx, bundle, sent.map((e) => e.deviceId));
      out.push(...this.deployCommands(sent, bundle, d, deltas));
      log.debug({ sent: sent.length, phase: d.phase }, 'executions dispatched');
      // The executions just sent are unended (and locked by this transaction): not complete yet.
      return out;
    }

    const after = await store.tally(tx, d.id, d.phase);
    if (after.unended === 0 && d.phase >= lastPhase) {
      if (pastThreshold(after.failures, after.released, rollout.maxFailurePercent)) {
        // An event committed during this tick ended the last executions past the threshold:
        // the deployment is aborted, not completed (the next tick, at once, does it).
        this.again = true;
      } else {
        await store.setDeployment(tx, d.id, { status: 'completed' });
        changed();
        log.info('deployment completed');
      }
    }
    return out;
  }

  /** Cancels a running deployment: queued executions end, every one between `sent` and `verifying` is told to stop (DESIGN §3). */
  async cancel(id: string): Promise<{ outcome: 'cancelled' | 'absent' | 'not_running'; status?: DeploymentRow['status'] }> {
    const outbound: Outbound[] = [];
    const result = await this.opts.store.transaction(async (tx) => {
      const d = await this.opts.store.get(tx, id, true);
      if (!d) return { outcome: 'absent' as const };
      if (d.status !== 'running') return { outcome: 'not_running' as const, status: d.status };
      await this.opts.store.cancelQueued(tx, id, 'deployment cancelled');
      for (const e of await this.opts.store.requestCancels(tx, id)) this.encode(outbound, e.deviceId, this.cancelCommand(e));
      await this.opts.store.setDeployment(tx, id, { status: 'cancelled', reason: 'cancelled by an operator' });
      return { outcome: 'cancelled' as const };
    });
    await this.publish(outbound);
    if (result.outcome === 'cancelled') this.tell({ kind: 'deployment', deploymentId: id });
    if (result.outcome === 'cancelled') this.log.info({ deploymentId: id, told: outbound.length }, 'deployment cancelled');
    return result;
  }

  /** A device's command subscription is in place: publish again whatever it has not reported yet (DESIGN §1, §5). */
  healDevice(deviceId: string): Promise<void> {
    return this.healDevices([deviceId]);
  }

  /**
   * {@link healDevice} for many connected devices (after a Redis outage, DESIGN §8):
   * one transaction, and one look-up of what is owed, per HEAL_BATCH devices.
   */
  async healDevices(deviceIds: readonly string[]): Promise<void> {
    for (let i = 0; i < deviceIds.length; i += HEAL_BATCH) {
      const batch = deviceIds.slice(i, i + HEAL_BATCH);
      try {
        const outbound = await this.opts.store.transaction((tx) => this.owedCommands(tx, batch));
        if (outbound.length) this.log.info({ devices: batch.length, deviceId: batch.length === 1 ? batch[0] : undefined, commands: outbound.length }, 'devices connected; commands sent again');
        await this.publish(outbound);
      } catch (err) {
        this.log.error({ err, devices: batch.length, deviceId: batch.length === 1 ? batch[0] : undefined }, 'healing connected devices failed');
      }
    }
  }

  private async owedCommands(tx: Db, deviceIds: readonly string[]): Promise<Outbound[]> {
    const { store } = this.opts;
    const outbound: Outbound[] = [];
    const owed = await store.owedTo(tx, deviceIds);
    const deployments = new Map<string, Promise<DeploymentRow | undefined>>();
    const deployment = (id: string): Promise<DeploymentRow | undefined> => {
      if (!deployments.has(id)) deployments.set(id, store.get(tx, id));
      return deployments.get(id)!;
    };
    const deploysBy = new Map<string, ExecutionRow[]>();
    for (const e of owed.deploys) deploysBy.set(e.deploymentId, [...(deploysBy.get(e.deploymentId) ?? []), e]);
    for (const [deploymentId, executions] of deploysBy) {
      const d = await deployment(deploymentId);
      const bundle = await store.bundleOf(tx, deploymentId);
      if (!d || !bundle) continue;
      outbound.push(...this.deployCommands(executions, bundle, d, await this.deltasFor(tx, bundle, executions.map((e) => e.deviceId))));
    }
    for (const e of owed.cancels) this.encode(outbound, e.deviceId, this.cancelCommand(e));
    for (const e of owed.rollbacks) this.encode(outbound, e.deviceId, this.rollbackCommand(e, (await deployment(e.deploymentId))?.bundleName ?? ''));
    return outbound;
  }

  private tell(change: OrchestratorChange): void {
    try {
      this.opts.onChange?.(change);
    } catch (err) {
      this.log.error({ err }, 'change listener failed');
    }
  }

  /**
   * Hands the commands to the broker after those of earlier calls, {@link HAND_SLICE} per turn
   * of the event loop; resolves when the broker has taken each (or failed to).
   */
  private async publish(outbound: readonly Outbound[]): Promise<void> {
    if (!outbound.length) return;
    const handed = this.handing.then(() => this.hand(outbound));
    this.handing = handed.catch(() => undefined); // hand() does not reject; if it ever did, later publishes must still run
    const results = await Promise.all(await handed);
    const published = new Map<Command['type'], number>();
    const debug = this.log.isLevelEnabled('debug');
    results.forEach((err, i) => {
      const { deviceId, command } = outbound[i]!;
      if (!err) {
        published.set(command.type, (published.get(command.type) ?? 0) + 1);
        if (debug) this.log.debug({ deviceId, executionId: command.executionId, type: command.type }, 'command published');
      } else {
        // The row says what is owed; the device gets it again when it connects.
        this.log.warn({ err: err.message, deviceId, executionId: command.executionId }, 'command not published');
      }
    });
    for (const [type, n] of published) this.published.labels(type).inc(n);
  }

  /** Hands each command to the broker, in order, yielding between slices; each promise says how its publish ended (never rejects). */
  private async hand(outbound: readonly Outbound[]): Promise<Array<Promise<Error | undefined>>> {
    const results: Array<Promise<Error | undefined>> = [];
    for (let i = 0; i < outbound.length; i++) {
      if (i > 0 && i % HAND_SLICE === 0) await nextTurn();
      const { deviceId, command } = outbound[i]!;
      results.push(this.opts.link.publishEncoded(deviceId, command).then(() => undefined, (err: Error) => err));
    }
    return results;
  }

  /** Checks and serialises one command into `out`; one that fails the schema is refused: logged, counted, not sent. */
  private encode(out: Outbound[], deviceId: string, command: Command): void {
    try {
      out.push({ deviceId, command: EncodedCommand.of(command) });
    } catch (err) {
      this.refuse(deviceId, command.type, command.executionId, (err as Error).message);
    }
  }

  /** A command this server made fails the command schema (DESIGN §3): it is not sent, and its execution times out as any unanswered one. */
  private refuse(deviceId: string, type: Command['type'], executionId: string, reason: string): void {
    this.refused.labels(type).inc();
    this.log.error({ deviceId, executionId, type, reason }, 'command refused: fails the command schema');
  }

  /**
   * Deltas for these devices; a failure there costs only the saving: the full bundle goes.
   * Read on the pool, not in the tick's transaction: a failed query there must not abort the
   * transaction, and one statement is one round trip where a savepoint around it was three.
   */
  private async deltasFor(tx: Db, bundle: BundleForCommand, deviceIds: readonly string[]): Promise<Map<string, DeltaRef>> {
    if (!this.opts.deltaRefs) return new Map();
    try {
      // On the caller's transaction, not the pool: a caller holding its transaction's connection while
      // waiting for another one deadlocks once as many heals run at once as the pool has connections.
      // In a savepoint: a failed query must not abort that transaction.
      const deltaRefs = this.opts.deltaRefs;
      return await inSavepoint(tx, (db) => deltaRefs(db, bundle, deviceIds));
    } catch (err) {
      this.log.warn({ err: (err as Error).message, bundleId: bundle.id }, 'deltas not looked up; full bundles sent');
      return new Map();
    }
  }

  /**
   * The deploy commands of a batch of executions of one deployment, checked
   * and serialised. They share the bundle and the deployment's settings, so
   * that part is checked and serialised once ({@link EncodedCommand.deploys});
   * a device with a delta has a bundle of its own and is checked alone.
   */
  private deployCommands(
    executions: ReadonlyArray<Pick<ExecutionRow, 'id' | 'deviceId'>>,
    bundle: BundleForCommand,
    d: DeploymentRow,
    deltas: ReadonlyMap<string, DeltaRef>,
  ): Outbound[] {
    // `soakS` only when set: rollouts stored before it existed have none (DESIGN §5: default 0).
    const soakS = d.rollout.soakS ?? 0;
    const shared: SharedDeploy = { timeoutS: d.timeoutS, ...(soakS > 0 ? { soakS } : {}), bundle: { ...bundle, url: this.opts.bundleUrl(bundle.id) } };
    const issuedAt = new Date().toISOString();
    const out: Outbound[] = [];
    const plain: Array<{ deviceId: string; identity: CommandIdentity }> = [];
    for (const e of executions) {
      const identity = { id: randomUUID(), executionId: e.id, issuedAt };
      const delta = deltas.get(e.deviceId);
      if (delta) this.encode(out, e.deviceId, { ...identity, type: 'deploy', ...shared, bundle: { ...shared.bundle, delta } });
      else plain.push({ deviceId: e.deviceId, identity });
    }
    EncodedCommand.deploys(
      shared,
      plain.map((p) => p.identity),
    ).forEach((c, i) => {
      const { deviceId } = plain[i]!;
      if (c instanceof EncodedCommand) out.push({ deviceId, command: c });
      else this.refuse(deviceId, 'deploy', c.executionId, c.reason);
    });
    return out;
  }

  private cancelCommand(e: ExecutionRow): CancelCommand {
    return { id: randomUUID(), type: 'cancel', executionId: e.id, issuedAt: new Date().toISOString() };
  }

  private rollbackCommand(e: ExecutionRow, name: string): RollbackCommand {
    return { id: randomUUID(), type: 'rollback', executionId: e.id, issuedAt: new Date().toISOString(), name };
  }
}
