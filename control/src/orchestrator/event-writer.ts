import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { WriteInterrupted, writeIsolating, type WriterMetrics, type WriterState } from '../services/batch-writer.js';
import type { DeploymentsStore, ExecutionRow } from '../store/deployments.pg.js';
import { IN_FLIGHT_STATES, type ExecutionEvent, type ExecutionState } from '@kernex/shared';
import { judgeTransition } from './rules.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An execution an event moved, told after its commit (the live event stream, the orchestrator's tick). */
export interface AppliedEvent {
  executionId: string;
  deploymentId: string;
  deviceId: string;
  state: ExecutionState;
  error: string | null;
}

/** What became of an event once it is stored (or refused): the broker may acknowledge it. */
export type EventOutcome = 'applied' | 'same' | 'refused';

/** The connection an event came on; an event whose connection closed is forgotten (the device sends it again). */
export interface EventConnection {
  readonly closed: boolean;
}

export interface EventWriterOptions {
  /** Longest an event waits for others to share its commit (ms, default 2). */
  flushMs?: number;
  /** Most events per transaction (default 500). */
  maxBatch?: number;
  /** Wait before trying again while the database is away (ms, default 1000). */
  retryMs?: number;
}

interface Pending {
  deviceId: string;
  event: ExecutionEvent;
  connection: EventConnection | undefined;
  at: number;
  resolve(outcome: EventOutcome): void;
}

type Verdict = { kind: 'apply'; applied: AppliedEvent } | { kind: 'same' } | { kind: 'refused'; reason: 'unknown_execution' | 'transition'; from?: ExecutionState };

/**
 * Stores execution events before the broker acknowledges them (DESIGN §3):
 * the broker hands each valid event to {@link submit} and sends its PUBACK
 * when the returned promise resolves. Events wait a few ms (or until
 * `maxBatch`) and are committed together in one transaction: one lock of
 * their executions, then one UPDATE of the new states, so throughput does not
 * cost one round trip per event. Executions move forward only
 * (`judgeTransition`); the same state again only counts as progress of an
 * in-flight execution, so storing an event twice changes nothing more.
 * Unknown executions and impossible transitions are refused, counted, and
 * acknowledged (MQTT 3.1.1 has no negative PUBACK); so is an event
 * PostgreSQL refuses (set apart by splitting the batch). While the database
 * is away nothing is acknowledged: events wait and are tried again, those
 * whose connection closed are forgotten (the device re-sends them).
 * Emits `applied` after a commit that moved executions, with what moved.
 */
export class EventWriter extends EventEmitter<{ applied: [changes: AppliedEvent[]] }> {
  private queue: Pending[] = [];
  /** The batch being committed: still waiting until it is. */
  private writing: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private failing = false;
  private closed = false;
  private readonly refused: Counter<'reason'>;
  private readonly commitSeconds: Histogram;
  private readonly flushMs: number;
  private readonly maxBatch: number;
  private readonly retryMs: number;
  private readonly log: Logger;

  constructor(
    private readonly store: DeploymentsStore,
    log: Logger,
    registry: Registry,
    private readonly writerMetrics?: WriterMetrics,
    options: EventWriterOptions = {},
  ) {
    super();
    this.log = log.child({ mod: 'events' });
    this.flushMs = options.flushMs ?? 2;
    this.maxBatch = options.maxBatch ?? 500;
    this.retryMs = options.retryMs ?? 1000;
    this.refused = new Counter({
      name: 'kernex_execution_events_refused_total',
      help: 'Execution events refused (and acknowledged), by reason: unknown_execution, transition, unstorable',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.commitSeconds = new Histogram({
      name: 'kernex_execution_events_commit_seconds',
      help: 'Time to commit one batch of execution events',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    });
    writerMetrics?.watch('events', () => this.state());
  }

  /** Backlog, age of the oldest event, whether the database is away (`/readyz`, metrics). */
  state(): WriterState {
    return { backlog: this.writing.length + this.queue.length, oldestAt: (this.writing[0] ?? this.queue[0])?.at, failing: this.failing };
  }

  /**
   * Takes one event; resolves once it is committed or refused, never rejects.
   * Stays pending while the database is away, and forever after {@link close}.
   */
  submit(deviceId: string, event: ExecutionEvent, connection?: EventConnection): Promise<EventOutcome> {
    if (this.closed) return new Promise(() => {});
    return new Promise((resolve) => {
      this.queue.push({ deviceId, event, connection, at: Date.now(), resolve });
      if (this.queue.length >= this.maxBatch) this.kick(0);
      else this.kick(this.flushMs);
    });
  }

  /** Commits what waits (one attempt, none while the database is away), then takes no more events. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    // Unacknowledged events are safe on their devices: a shutdown need not wait for the database.
    if (this.queue.length && !this.failing) await this.flush();
  }

  private kick(delayMs: number): void {
    if (this.flushing) return; // the running flush looks at the queue again when it ends
    if (this.timer && delayMs > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  private flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
      if (this.queue.length && !this.closed) this.kick(this.failing ? this.retryMs : 0);
    });
    return this.flushing;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      // An event whose connection closed can no longer be acknowledged; the device sends it again.
      this.queue = this.queue.filter((p) => !p.connection?.closed);
      const batch = this.queue.splice(0, this.maxBatch);
      if (batch.length === 0) return;
      const moved: AppliedEvent[] = [];
      this.writing = batch;
      try {
        await writeIsolating(
          batch,
          async (part) => {
            const end = this.commitSeconds.startTimer();
            const verdicts = await this.commit(part);
            end();
            part.forEach((p, i) => this.settle(p, verdicts[i]!));
            for (const v of verdicts) if (v.kind === 'apply') moved.push(v.applied);
          },
          (p, err) => {
            this.refused.labels('unstorable').inc();
            this.writerMetrics?.refused.labels('events').inc();
            this.log.warn({ deviceId: p.deviceId, executionId: p.event.executionId, err: (err as Error).message }, 'execution event refused by the database; acknowledged and dropped');
            p.resolve('refused');
          },
        );
        if (this.failing) this.log.info('execution event writes resumed');
        this.failing = false;
      } catch (err) {
        const unwritten = err instanceof WriteInterrupted ? (err.unwritten as Pending[]) : batch;
        this.queue.unshift(...unwritten);
        const cause = err instanceof WriteInterrupted ? err.cause : err;
        if (!this.failing) this.log.warn({ err: (cause as Error).message, backlog: this.queue.length }, 'execution events not stored; not acknowledged, trying again');
        this.failing = true;
        return;
      } finally {
        this.writing = [];
        if (moved.length) this.emit('applied', moved);
      }
    }
  }

  /** One transaction for a batch: lock its executions, judge each event in order, write the outcomes. */
  private commit(part: readonly Pending[]): Promise<Verdict[]> {
    return this.store.sql.begin(async (tx) => {
      const ids = [...new Set(part.map((p) => p.event.executionId).filter((id) => UUID.test(id)))].map((id) => id.toLowerCase());
      const rows = new Map<string, ExecutionRow>((await this.store.lockExecutions(tx, ids)).map((r) => [r.id, { ...r }]));
      const states = new Map<string, { id: string; state: ExecutionState; error: string | null }>();
      const succeeded = new Set<string>();
      const rolledBack = new Set<string>();
      const touched = new Set<string>();
      const verdicts = part.map(({ deviceId, event }): Verdict => {
        const e = UUID.test(event.executionId) ? rows.get(event.executionId.toLowerCase()) : undefined;
        if (!e || e.deviceId !== deviceId) return { kind: 'refused', reason: 'unknown_execution' };
        const v = judgeTransition(e.state, event.state, e.rollbackRequested);
        if (v === 'refuse') return { kind: 'refused', reason: 'transition', from: e.state };
        if (v === 'apply') {
          // succeeded → rolled_back (only after a rollback command): the device's bundles go back.
          if (e.state === 'succeeded' && event.state === 'rolled_back') rolledBack.add(e.id);
          e.state = event.state;
          const prev = states.get(e.id);
          states.set(e.id, { id: e.id, state: event.state, error: event.error ?? prev?.error ?? null });
          if (event.state === 'succeeded') succeeded.add(e.id);
          touched.delete(e.id);
          const error = event.error ?? prev?.error ?? e.error;
          return { kind: 'apply', applied: { executionId: e.id, deploymentId: e.deploymentId, deviceId, state: event.state, error } };
        }
        if (IN_FLIGHT_STATES.includes(e.state) && !states.has(e.id)) {
          // Progress without a new state resets the no-progress timer; an ended execution stays as it is.
          touched.add(e.id);
        }
        return { kind: 'same' };
      });
      await this.store.applyEventOutcomes(tx, { states: [...states.values()], touched: [...touched] });
      await this.store.recordBundleOutcomes(tx, { succeeded: [...succeeded], rolledBack: [...rolledBack] });
      return verdicts;
    }) as Promise<Verdict[]>;
  }

  private settle(p: Pending, v: Verdict): void {
    const { deviceId, event } = p;
    if (v.kind === 'refused') {
      this.refused.labels(v.reason).inc();
      this.log.info({ deviceId, executionId: event.executionId, state: event.state, from: v.from, reason: v.reason }, 'execution event refused');
      p.resolve('refused');
      return;
    }
    this.log.debug({ deviceId, executionId: event.executionId, state: event.state }, 'execution event stored');
    p.resolve(v.kind === 'apply' ? 'applied' : 'same');
  }
}
