import { ACTIVE_STATES, CANCELLABLE_STATES, FAILURE_STATES, IN_FLIGHT_STATES, type BundleRef, type ExecutionState } from '@kernex/shared';
import type { Sql } from 'postgres';
import { inTransaction, type Db } from './database.js';
import { toPage, type CursorKey, type Page } from '../paging.js';

/** One orchestrator at a time across every server of an installation ('kernex' in ASCII). */
const ORCHESTRATOR_LOCK = 0x6b65726e6578n;

/**
 * One rollout phase (DESIGN §5): `percent` is cumulative, the share of the target released
 * by the end of this phase; `waitS` is how long to wait after it settles before the next.
 */
export interface Phase {
  percent: number;
  waitS: number;
}

/** A deployment's rollout with every default filled in. */
export interface Rollout {
  phases: Phase[];
  maxFailurePercent: number;
  maxConcurrent: number | null;
  rollbackOnAbort: boolean;
  /** Seconds each device soaks in `verifying` before `succeeded` (DESIGN §5). */
  soakS: number;
}

/** Who a deployment targets, as the operator gave it. */
export interface Target {
  deviceIds?: string[];
  tags?: string[];
  all?: boolean;
}

export type DeploymentStatus = 'running' | 'completed' | 'aborted' | 'cancelled';

export interface DeploymentRow {
  id: string;
  bundleId: string | null;
  bundleName: string;
  bundleVersion: string;
  target: Target;
  rollout: Rollout;
  timeoutS: number;
  status: DeploymentStatus;
  phase: number;
  phaseSettledAt: Date | null;
  reason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface ExecutionRow {
  id: string;
  deploymentId: string;
  deviceId: string;
  phase: number;
  state: ExecutionState;
  error: string | null;
  /** The server sent (or is to send) a `rollback` for it: the one way out of `succeeded`. */
  rollbackRequested: boolean;
  updatedAt: Date;
}

/** The bundle fields a `deploy` command carries, but its URL (the orchestrator adds it). */
export type BundleForCommand = Omit<BundleRef, 'url'>;

const toDeployment = (r: Record<string, any>): DeploymentRow => ({
  id: r.id,
  bundleId: r.bundle_id,
  bundleName: r.bundle_name,
  bundleVersion: r.bundle_version,
  target: r.target,
  rollout: r.rollout,
  timeoutS: r.timeout_s,
  status: r.status,
  phase: r.phase,
  phaseSettledAt: r.phase_settled_at,
  reason: r.reason,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toExecution = (r: Record<string, any>): ExecutionRow => ({
  id: r.id,
  deploymentId: r.deployment_id,
  deviceId: r.device_id,
  phase: r.phase,
  state: r.state,
  error: r.error,
  rollbackRequested: r.rollback_requested === true,
  updatedAt: r.updated_at,
});

/** Deployments and executions (DESIGN §5). Every method takes the pool or a transaction. */
export class DeploymentsStore {
  constructor(private readonly sql: Sql) {}

  /** The pool: statements outside a transaction. */
  get pool(): Db {
    return this.sql;
  }

  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    return inTransaction(this.sql, fn);
  }

  /**
   * Takes the orchestrator's advisory lock for the rest of transaction `tx`; false when another
   * server's orchestrator holds it (this tick has nothing to do).
   */
  async tryOrchestratorLock(tx: Db): Promise<boolean> {
    const [lock] = await tx<{ ok: boolean }[]>`select pg_try_advisory_xact_lock(${ORCHESTRATOR_LOCK.toString()}::bigint) as ok`;
    return lock?.ok === true;
  }

  /** Accepted devices matching a target: listed ids, any of the tags, or all. Unknown or unaccepted ids are returned apart. */
  async resolveTarget(db: Db, t: Target): Promise<{ deviceIds: string[]; missing: string[] }> {
    const ids = t.deviceIds ?? [];
    const tags = t.tags ?? [];
    const rows = await db<{ id: string }[]>`
      select id from devices
      where status = 'accepted'
        and (${t.all === true} or id = any(${ids}::text[]) or tags && ${tags}::text[])
      order by id`;
    const found = new Set(rows.map((r) => r.id));
    return { deviceIds: rows.map((r) => r.id), missing: ids.filter((id) => !found.has(id)) };
  }

  async insertDeployment(
    db: Db,
    d: { bundle: { id: string; name: string; version: string }; target: Target; rollout: Rollout; timeoutS: number; createdBy: string | null },
    executions: Array<{ deviceId: string; phase: number }>,
  ): Promise<DeploymentRow> {
    const [row] = await db`
      insert into deployments (bundle_id, bundle_name, bundle_version, target, rollout, timeout_s, created_by)
      values (${d.bundle.id}, ${d.bundle.name}, ${d.bundle.version}, ${db.json(d.target as never)}, ${db.json(d.rollout as never)}, ${d.timeoutS}, ${d.createdBy})
      returning *`;
    const deployment = toDeployment(row!);
    const devices = executions.map((e) => e.deviceId);
    const phases = executions.map((e) => e.phase);
    await db`
      insert into executions (deployment_id, device_id, phase)
      select ${deployment.id}, d, p from unnest(${devices}::text[], ${phases}::int[]) as x(d, p)`;
    return deployment;
  }

  async get(db: Db, id: string, lock = false): Promise<DeploymentRow | undefined> {
    const [row] = lock ? await db`select * from deployments where id = ${id} for update` : await db`select * from deployments where id = ${id}`;
    return row ? toDeployment(row) : undefined;
  }

  async list(db: Db, limit: number, after?: CursorKey, status?: DeploymentStatus): Promise<Page<DeploymentRow>> {
    const rows = await db`
      select *, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at from deployments
      where true
      ${status ? db`and status = ${status}` : db``}
      ${after ? db`and (created_at, id) < (${after.at}::timestamptz, ${after.id}::uuid)` : db``}
      order by created_at desc, id desc
      limit ${limit + 1}`;
    return toPage(rows, limit, (r) => ({ at: r.at as string, id: r.id as string }), toDeployment);
  }

  /** Execution counts by state. */
  async counts(db: Db, deploymentId: string): Promise<Record<string, number>> {
    const rows = await db<{ state: string; n: number }[]>`
      select state, count(*)::int as n from executions where deployment_id = ${deploymentId} group by state`;
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** Executions of a deployment by device id, paged by device id. */
  async executions(db: Db, deploymentId: string, limit: number, afterDevice?: string, state?: ExecutionState): Promise<ExecutionRow[]> {
    const rows = await db`
      select * from executions where deployment_id = ${deploymentId}
      ${state ? db`and state = ${state}` : db``}
      ${afterDevice ? db`and device_id > ${afterDevice}` : db``}
      order by device_id limit ${limit + 1}`;
    return rows.map(toExecution);
  }

  /** Deployments the orchestrator has work on: running, or with executions still in flight or rollbacks to send. */
  async active(db: Db): Promise<string[]> {
    const rows = await db<{ id: string }[]>`
      select d.id from deployments d
      where d.status = 'running' or exists (
        select 1 from executions e where e.deployment_id = d.id
          and (e.state = any(${IN_FLIGHT_STATES}::text[]) or (e.rollback_requested and e.state = 'succeeded' and e.rollback_sent_at is null)))
      order by d.created_at`;
    return rows.map((r) => r.id);
  }

  /** Ends executions with no progress for the deployment's timeoutS. */
  async timeOut(db: Db, d: DeploymentRow): Promise<number> {
    const rows = await db`
      update executions set state = 'timed_out', error = ${`no progress for ${d.timeoutS} s`}, updated_at = now()
      where deployment_id = ${d.id} and state = any(${IN_FLIGHT_STATES}::text[])
        and updated_at < now() - make_interval(secs => ${d.timeoutS})
      returning id`;
    return rows.length;
  }

  /** Per phase: executions released so far, failed, not ended, in flight. */
  async tally(db: Db, deploymentId: string, phase: number): Promise<{ released: number; failures: number; unendedReleased: number; inFlight: number; unended: number }> {
    const [r] = await db`
      select
        count(*) filter (where phase <= ${phase})::int as released,
        count(*) filter (where phase <= ${phase} and state = any(${FAILURE_STATES}::text[]))::int as failures,
        count(*) filter (where phase <= ${phase} and state = any(${ACTIVE_STATES}::text[]))::int as unended_released,
        count(*) filter (where state = any(${IN_FLIGHT_STATES}::text[]))::int as in_flight,
        count(*) filter (where state = any(${ACTIVE_STATES}::text[]))::int as unended
      from executions where deployment_id = ${deploymentId}`;
    return { released: r!.released, failures: r!.failures, unendedReleased: r!.unended_released, inFlight: r!.in_flight, unended: r!.unended };
  }

  async setDeployment(db: Db, id: string, patch: { status?: DeploymentStatus; phase?: number; phaseSettledAt?: Date | null; reason?: string }): Promise<void> {
    await db`
      update deployments set
        status = coalesce(${patch.status ?? null}, status),
        phase = coalesce(${patch.phase ?? null}::int, phase),
        phase_settled_at = ${patch.phaseSettledAt === undefined ? db`phase_settled_at` : patch.phaseSettledAt},
        reason = coalesce(${patch.reason ?? null}, reason),
        updated_at = now()
      where id = ${id}`;
  }

  /**
   * Marks up to `limit` queued executions of released phases sent; returns their ids and devices
   * (skipping rows another transaction holds). Only the two columns a command needs come back:
   * at 1,000 rows a batch, parsing whole rows (four timestamps each) was a cost of its own.
   */
  async dispatch(db: Db, deploymentId: string, phase: number, limit: number): Promise<Array<Pick<ExecutionRow, 'id' | 'deviceId'>>> {
    if (limit <= 0) return [];
    const rows = await db<{ id: string; device_id: string }[]>`
      update executions set state = 'sent', sent_count = sent_count + 1, sent_at = now(), updated_at = now()
      where id in (
        select id from executions
        where deployment_id = ${deploymentId} and state = 'queued' and phase <= ${phase}
        order by phase, device_id limit ${limit}
        for update skip locked)
      returning id, device_id`;
    return rows.map((r) => ({ id: r.id, deviceId: r.device_id }));
  }

  /** Cancels every queued execution of a deployment. */
  async cancelQueued(db: Db, deploymentId: string, error: string): Promise<number> {
    const rows = await db`
      update executions set state = 'cancelled', error = ${error}, updated_at = now()
      where deployment_id = ${deploymentId} and state = 'queued' returning id`;
    return rows.length;
  }

  /** Asks a rollback of every succeeded execution of the deployment (after an abort). */
  async requestRollbacks(db: Db, deploymentId: string): Promise<void> {
    await db`update executions set rollback_requested = true where deployment_id = ${deploymentId} and state = 'succeeded' and not rollback_requested`;
  }

  /** Rollbacks asked and not yet published: marks them published and returns them. */
  async takeRollbacks(db: Db, deploymentId: string): Promise<ExecutionRow[]> {
    const rows = await db`
      update executions set rollback_sent_at = now()
      where deployment_id = ${deploymentId} and rollback_requested and state = 'succeeded' and rollback_sent_at is null
      returning *`;
    return rows.map(toExecution);
  }

  /** Executions that may still be cancelled (DESIGN §3: between `sent` and `verifying`): marks a cancel asked and returns them. */
  async requestCancels(db: Db, deploymentId: string): Promise<ExecutionRow[]> {
    const rows = await db`
      update executions set cancel_sent_at = now()
      where deployment_id = ${deploymentId} and state = any(${CANCELLABLE_STATES}::text[])
      returning *`;
    return rows.map(toExecution);
  }

  /** What devices that just connected must be sent again (DESIGN §1: healed from the database), for many devices at once. */
  async owedTo(db: Db, deviceIds: readonly string[]): Promise<{ deploys: ExecutionRow[]; rollbacks: ExecutionRow[]; cancels: ExecutionRow[] }> {
    const ids = [...deviceIds];
    const deploys = await db`
      update executions e set sent_count = sent_count + 1, sent_at = now()
      from deployments d
      where e.deployment_id = d.id and e.device_id = any(${ids}::text[]) and e.state = 'sent' and e.cancel_sent_at is null
      returning e.*`;
    const rollbacks = await db`
      select * from executions where device_id = any(${ids}::text[]) and rollback_requested and state = 'succeeded'`;
    const cancels = await db`
      select * from executions where device_id = any(${ids}::text[]) and cancel_sent_at is not null and state = any(${CANCELLABLE_STATES}::text[])`;
    return { deploys: deploys.map(toExecution), rollbacks: rollbacks.map(toExecution), cancels: cancels.map(toExecution) };
  }

  /** The bundle of a deployment, for its commands. */
  async bundleOf(db: Db, deploymentId: string): Promise<BundleForCommand | undefined> {
    const [r] = await db`
      select b.id, b.name, b.version, b.sha256, b.size, b.signature
      from deployments d join bundles b on b.id = d.bundle_id where d.id = ${deploymentId}`;
    return r ? { id: r.id, name: r.name, version: r.version, sha256: r.sha256, size: Number(r.size), signature: r.signature } : undefined;
  }

  /**
   * A device's `bundles` follows its executions (DESIGN §5), for a batch of
   * applied events. `succeeded`: it names the new version, and each execution
   * keeps the version it replaced (`previous_version`). `rolledBack` (executions
   * that went succeeded → rolled_back): that version is put back, or the name
   * removed when there was none. A rollback before the switch changed nothing
   * on the device, so it is not listed. Grouped by device: UPDATE ... FROM
   * applies one source row per target row.
   */
  async recordBundleOutcomes(db: Db, o: { succeeded: readonly string[]; rolledBack: readonly string[] }): Promise<void> {
    if (o.succeeded.length) {
      // One statement: the CTE and the UPDATE both read the devices' bundles as they were before.
      await db`
        with kept as (
          update executions e set previous_version = v.bundles ->> d.bundle_name
          from deployments d, devices v
          where e.id = any(${[...o.succeeded]}::uuid[]) and d.id = e.deployment_id and v.id = e.device_id
        )
        update devices v set bundles = v.bundles || x.b, bundles_at = now(), updated_at = now()
        from (
          select e.device_id, jsonb_object_agg(d.bundle_name, d.bundle_version) as b
          from executions e join deployments d on d.id = e.deployment_id
          where e.id = any(${[...o.succeeded]}::uuid[])
          group by e.device_id) x
        where v.id = x.device_id`;
    }
    if (o.rolledBack.length) {
      await db`
        update devices v set bundles = (v.bundles - x.removed) || x.restored, bundles_at = now(), updated_at = now()
        from (
          select e.device_id,
            coalesce(jsonb_object_agg(d.bundle_name, e.previous_version) filter (where e.previous_version is not null), '{}'::jsonb) as restored,
            coalesce(array_agg(d.bundle_name) filter (where e.previous_version is null), '{}'::text[]) as removed
          from executions e join deployments d on d.id = e.deployment_id
          where e.id = any(${[...o.rolledBack]}::uuid[])
          group by e.device_id) x
        where v.id = x.device_id`;
    }
  }

  /** Locks executions by id (in id order, so concurrent batches cannot deadlock), to apply a batch of events. */
  async lockExecutions(db: Db, ids: readonly string[]): Promise<ExecutionRow[]> {
    if (ids.length === 0) return [];
    const rows = await db`select * from executions where id = any(${[...ids]}::uuid[]) order by id for update`;
    return rows.map(toExecution);
  }

  /**
   * Writes a batch of event outcomes: new states (one UPDATE over unnest'ed
   * arrays) and the progress reports that keep an in-flight execution alive
   * (`updated_at`). The devices' bundles follow in {@link recordBundleOutcomes}.
   */
  async applyEventOutcomes(
    db: Db,
    o: { states: ReadonlyArray<{ id: string; state: ExecutionState; error: string | null }>; touched: readonly string[] },
  ): Promise<void> {
    if (o.states.length) {
      await db`
        update executions e set state = v.state, error = coalesce(v.error, e.error), updated_at = now()
        from unnest(${o.states.map((c) => c.id)}::uuid[], ${o.states.map((c) => c.state)}::text[], ${o.states.map((c) => c.error) as string[]}::text[]) as v(id, state, error)
        where e.id = v.id`;
    }
    if (o.touched.length) await db`update executions set updated_at = now() where id = any(${[...o.touched]}::uuid[])`;
  }

  /** True while a running deployment uses the bundle. */
  async bundleInUse(db: Db, bundleId: string): Promise<boolean> {
    const [r] = await db`select 1 from deployments where bundle_id = ${bundleId} and status = 'running' limit 1`;
    return Boolean(r);
  }

  /** True when the device has a live execution of a deployment of this bundle (DESIGN §4: who may download it). */
  async deviceMayFetch(db: Db, deviceId: string, bundleId: string): Promise<boolean> {
    const [r] = await db`
      select 1 from executions e join deployments d on d.id = e.deployment_id
      where e.device_id = ${deviceId} and d.bundle_id = ${bundleId} and e.state = any(${IN_FLIGHT_STATES}::text[]) limit 1`;
    return Boolean(r);
  }

  /** Executions across all deployments by state (the `kernex_executions` gauge). */
  async stateTotals(db: Db): Promise<Record<string, number>> {
    const rows = await db<{ state: string; n: number }[]>`select state, count(*)::int as n from executions group by state`;
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }
}
