import { SUCCESS_STATES } from '@kernex/shared';
import { setTimeout as delay } from 'node:timers/promises';
import { Command, InvalidArgumentError } from 'commander';
import { resolveBundle } from './bundles.command.js';
import { CliError, EXIT } from './cli-error.js';
import { action, collect, positiveInt, type CommandContext } from './context.js';
import { countsLine, deploymentPath, ended, showDeployment, total, type Deployment } from './deployments.command.js';
import { progressBar } from './progress.js';
import { parseDuration } from './tokens.command.js';

interface DeployOptions {
  device?: string[];
  tag?: string[];
  all?: boolean;
  phases?: number[];
  phaseWait?: number;
  maxFailure?: number;
  maxConcurrent?: number;
  rollbackOnAbort: boolean;
  wait?: boolean;
  interval: number;
}

/** `1,10,100` → cumulative percentages rising strictly to 100, as the API takes them (DESIGN §5). */
export function parsePhases(raw: string): number[] {
  const list = raw.split(',').map((p) => Number(p.trim()));
  const ok = list.length > 0 && list.every((p, i) => Number.isInteger(p) && p >= 1 && p <= 100 && (i === 0 || p > list[i - 1]!));
  if (!ok || list[list.length - 1] !== 100) throw new InvalidArgumentError('must be cumulative percentages rising strictly to 100, like 1,10,100 (the share released by the end of each phase).');
  return list;
}

function percent(raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0 || n > 100) throw new InvalidArgumentError('must be a percentage from 0 to 100.');
  return n;
}

function seconds(raw: string): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number of seconds above 0.');
  return n;
}

/** The request body of `POST /api/v1/deployments` (DESIGN §5). */
export function deploymentRequest(bundleId: string, o: DeployOptions): Record<string, unknown> {
  const kinds = [o.device ? 1 : 0, o.tag ? 1 : 0, o.all ? 1 : 0].reduce((a, b) => a + b, 0);
  if (kinds !== 1) throw new CliError('name the target with exactly one of --device ID..., --tag TAG... or --all');
  const target = o.device ? { deviceIds: o.device } : o.tag ? { tags: o.tag } : { all: true };
  const rollout: Record<string, unknown> = {};
  if (o.phases) rollout.phases = o.phases.map((p) => ({ percent: p, waitS: o.phaseWait ?? 0 }));
  if (o.maxFailure !== undefined) rollout.maxFailurePercent = o.maxFailure;
  if (o.maxConcurrent !== undefined) rollout.maxConcurrent = o.maxConcurrent;
  if (!o.rollbackOnAbort) rollout.rollbackOnAbort = false;
  return { bundleId, target, ...(Object.keys(rollout).length ? { rollout } : {}) };
}

/**
 * The exit code of `deploy --wait` for an ended deployment (DESIGN §5): 0 when
 * every execution ended succeeded or skipped, 3 when it was aborted, 4 for any
 * other outcome (failed, rolled back, timed out, cancelled).
 */
export function waitExitCode(d: Pick<Deployment, 'status' | 'counts'>): number {
  if (d.status === 'aborted') return EXIT.deploymentAborted;
  const all = total(d.counts);
  const good = SUCCESS_STATES.reduce((a, s) => a + (d.counts?.[s] ?? 0), 0);
  return d.status === 'completed' && good === all ? 0 : EXIT.deploymentFailed;
}

/** Polls the deployment until it is no longer running, drawing its progress. */
async function waitFor(api: CommandContext['api'], first: Deployment, intervalS: number): Promise<Deployment> {
  let d = first;
  const bar = progressBar('deploying |{bar}| {value}/{total} ended | {counts}', Math.max(1, total(d.counts)), { counts: countsLine(d.counts) });
  try {
    while (d.status === 'running') {
      bar.update(ended(d.counts), Math.max(1, total(d.counts)), { counts: countsLine(d.counts) });
      await delay(intervalS * 1000);
      d = await api.get<Deployment>(deploymentPath(d.id));
    }
    bar.update(ended(d.counts), Math.max(1, total(d.counts)), { counts: countsLine(d.counts) });
  } finally {
    bar.stop();
  }
  return d;
}

/** `kernex deploy BUNDLE (--device ID...|--tag T|--all) [...] [--wait]` (DESIGN §5). */
export function deployCommand(): Command {
  return new Command('deploy')
    .description('deploy a bundle (id or name@version) to devices, in phases')
    .argument('<bundle>', 'bundle id or name@version')
    .option('--device <id>', 'a target device (repeatable)', collect)
    .option('--tag <tag>', 'target devices with this tag (repeatable)', collect)
    .option('--all', 'target every accepted device')
    .option('--phases <percents>', 'rollout phases as cumulative percentages, e.g. 10,50,100', parsePhases)
    .option('--phase-wait <duration>', 'wait this long after a phase ends before the next (e.g. 300, 5m)', parseDuration)
    .option('--max-failure <pct>', 'abort when more than this percentage of a phase fails', percent)
    .option('--max-concurrent <n>', 'at most this many devices installing at once', positiveInt)
    .option('--no-rollback-on-abort', 'on abort, leave devices that succeeded on the new version')
    .option('--wait', 'wait until the deployment ends, with progress; exit 0 if every device succeeded or was skipped, 3 if aborted, 4 otherwise')
    .option('--interval <seconds>', 'how often --wait asks the server', seconds, 2)
    .action(
      action(async ({ api, out }: CommandContext, ref: string, opts: DeployOptions) => {
        const body = deploymentRequest('', opts); // checks the options before any request
        const bundle = await resolveBundle(api, ref);
        let d = await api.post<Deployment>('/api/v1/deployments', { ...body, bundleId: bundle.id });
        if (!opts.wait) {
          return out.result(d, () => out.line(`Deployment ${d.id} of ${bundle.name}@${bundle.version} started: ${countsLine(d.counts)}.`));
        }
        d = await waitFor(api, d, opts.interval);
        out.result(d, () => showDeployment(out, d));
        const exit = waitExitCode(d);
        if (exit !== 0) throw new CliError(`deployment ${d.id} ${d.status}: ${countsLine(d.counts)}`, exit);
      }),
    );
}
