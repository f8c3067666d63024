import { EXECUTION_STATES, type ExecutionState } from '@kernex/shared';
import type { Logger } from 'pino';
import type { Principal } from '../auth/principal.js';
import { Errors } from '../errors.js';
import type { Orchestrator } from '../orchestrator/orchestrator.js';
import { assignPhases, phasesProblem } from '../orchestrator/rules.js';
import type { BundlesStore } from '../store/bundles.pg.js';
import type { DeploymentRow, DeploymentsStore, Rollout, Target } from '../store/deployments.pg.js';
import { decodeCursor, isCursorKey, isDeviceId, toPage, type Page } from '../paging.js';

/** Body of `POST /api/v1/deployments` (DESIGN §5). */
export interface CreateDeployment {
  bundleId: string;
  target: Target;
  rollout?: Partial<Rollout>;
  /** Seconds of no progress before an execution is timed_out (default 3600). */
  timeoutS?: number;
}

/** What the API answers for a deployment. */
export interface DeploymentView {
  id: string;
  bundleId: string | null;
  bundle: { name: string; version: string };
  target: Target;
  rollout: Rollout;
  timeoutS: number;
  status: DeploymentRow['status'];
  phase: number;
  reason?: string;
  counts: Record<string, number>;
  total: number;
  createdAt: string;
  updatedAt: string;
}

export interface ExecutionView {
  deviceId: string;
  state: string;
  error?: string;
  updatedAt: string;
}

export const DEFAULT_EXECUTION_TIMEOUT_S = 3600;

/** Creates, shows, lists and cancels deployments; the orchestrator does the rest. */
export class DeploymentsService {
  constructor(
    private readonly store: DeploymentsStore,
    private readonly bundles: BundlesStore,
    private readonly orchestrator: Orchestrator,
    private readonly log: Logger,
  ) {}

  async create(input: CreateDeployment, principal: Principal | undefined): Promise<DeploymentView> {
    const given = input.rollout?.phases?.length ? input.rollout.phases.map((p) => ({ percent: p.percent, waitS: p.waitS ?? 0 })) : [{ percent: 100, waitS: 0 }];
    const problem = phasesProblem(given);
    if (problem) throw new Errors.VALIDATION(problem);
    const rollout: Rollout = {
      phases: given,
      maxFailurePercent: input.rollout?.maxFailurePercent ?? 100,
      maxConcurrent: input.rollout?.maxConcurrent ?? null,
      rollbackOnAbort: input.rollout?.rollbackOnAbort ?? true,
    };
    const t = input.target;
    if (!t.all && !t.deviceIds?.length && !t.tags?.length) throw new Errors.VALIDATION('body.target needs deviceIds, tags or all');

    const row = await this.store.sql.begin(async (tx) => {
      const bundle = await this.bundles.get(input.bundleId);
      if (!bundle) throw new Errors.NOT_FOUND('bundle');
      const { deviceIds, missing } = await this.store.resolveTarget(tx, t);
      if (missing.length) throw new Errors.VALIDATION(`body.target.deviceIds: not accepted devices: ${missing.slice(0, 10).join(', ')}`);
      if (deviceIds.length === 0) throw new Errors.VALIDATION('body.target matches no accepted device');
      const phases = assignPhases(deviceIds.length, rollout.phases);
      return this.store.insertDeployment(
        tx,
        {
          bundle,
          target: t,
          rollout,
          timeoutS: input.timeoutS ?? DEFAULT_EXECUTION_TIMEOUT_S,
          createdBy: principal?.kind === 'apiKey' ? principal.name : null,
        },
        deviceIds.map((deviceId, i) => ({ deviceId, phase: phases[i]! })),
      );
    });
    this.log.info({ deploymentId: row.id, bundle: `${row.bundleName}@${row.bundleVersion}` }, 'deployment created');
    this.orchestrator.kick();
    return this.view(row);
  }

  async get(id: string): Promise<DeploymentView> {
    const row = await this.store.get(this.store.sql, id);
    if (!row) throw new Errors.NOT_FOUND('deployment');
    return this.view(row);
  }

  async list(limit: number, cursor?: string, status?: DeploymentRow['status']): Promise<Page<DeploymentView>> {
    const after = cursor ? decodeCursor(cursor, isCursorKey) : undefined;
    const page = await this.store.list(this.store.sql, limit, after, status);
    return { items: await Promise.all(page.items.map((r) => this.view(r))), nextCursor: page.nextCursor };
  }

  async executions(id: string, limit: number, cursor?: string, state?: ExecutionState): Promise<Page<ExecutionView>> {
    const after = cursor ? decodeCursor(cursor, isDeviceId) : undefined;
    if (!(await this.store.get(this.store.sql, id))) throw new Errors.NOT_FOUND('deployment');
    const rows = await this.store.executions(this.store.sql, id, limit, after, state);
    return toPage(
      rows,
      limit,
      (e) => e.deviceId,
      (e) => ({ deviceId: e.deviceId, state: e.state, ...(e.error ? { error: e.error } : {}), updatedAt: e.updatedAt.toISOString() }),
    );
  }

  async cancel(id: string): Promise<DeploymentView> {
    const result = await this.orchestrator.cancel(id);
    if (result.outcome === 'absent') throw new Errors.NOT_FOUND('deployment');
    if (result.outcome === 'not_running') throw new Errors.CONFLICT(`deployment is ${result.status}, not running`);
    return this.get(id);
  }

  private async view(d: DeploymentRow): Promise<DeploymentView> {
    const found = await this.store.counts(this.store.sql, d.id);
    const counts = Object.fromEntries(EXECUTION_STATES.map((s) => [s, found[s] ?? 0]));
    return {
      id: d.id,
      bundleId: d.bundleId,
      bundle: { name: d.bundleName, version: d.bundleVersion },
      target: d.target,
      rollout: d.rollout,
      timeoutS: d.timeoutS,
      status: d.status,
      phase: d.phase,
      ...(d.reason ? { reason: d.reason } : {}),
      counts,
      total: Object.values(counts).reduce((a, b) => a + b, 0),
      createdAt: d.createdAt.toISOString(),
      updatedAt: d.updatedAt.toISOString(),
    };
  }
}
