import { TERMINAL_STATES } from '@kernex/shared';
import { Command, Option } from 'commander';
import { bundleLabel } from './bundles.command.js';
import { action, type CommandContext } from './context.js';


/** A deployment as `GET /api/v1/deployments/{id}` answers it (DESIGN §5). */
export interface Deployment {
  id: string;
  bundleId: string | null;
  /** The deployed bundle's name and version (DESIGN §5: shown as `name@version`). */
  bundle?: { name: string; version: string };
  status: 'running' | 'completed' | 'aborted' | 'cancelled';
  counts: Record<string, number>;
  target?: unknown;
  createdAt?: string;
  reason?: string | null;
}

export interface Execution {
  deviceId: string;
  state: string;
  error?: string | null;
  updatedAt: string;
}

export const deploymentPath = (id: string): string => `/api/v1/deployments/${encodeURIComponent(id)}`;

export const total = (counts: Record<string, number> = {}): number => Object.values(counts).reduce((a, b) => a + b, 0);
export const ended = (counts: Record<string, number> = {}): number => TERMINAL_STATES.reduce((a, s) => a + (counts[s] ?? 0), 0);

/** `succeeded 3, failed 1, queued 6`: non-zero counts only. */
export const countsLine = (counts: Record<string, number> = {}): string =>
  Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${s} ${n}`)
    .join(', ') || 'no executions';

/** `app@1.2.0`, or the id when the server did not name the bundle. */
export const deploymentBundle = (d: Deployment): string => (d.bundle ? bundleLabel(d.bundle) : (d.bundleId ?? '-'));

export function showDeployment(out: CommandContext['out'], d: Deployment): void {
  out.record([
    ['id', d.id],
    ['bundle', deploymentBundle(d)],
    ['status', d.status],
    ['executions', `${ended(d.counts)}/${total(d.counts)} ended`],
    ['counts', countsLine(d.counts)],
    ['created', d.createdAt],
  ]);
}

/** `kernex deployments ls|show|cancel` (DESIGN §5). */
export function deploymentsCommand(): Command {
  const deployments = new Command('deployments').description('deployments: list, inspect, cancel');

  deployments
    .command('ls')
    .description('list deployments')
    .addOption(new Option('--status <status>', 'only deployments in this status').choices(['running', 'completed', 'aborted', 'cancelled']))
    .action(
      action(async ({ api, out }: CommandContext, opts: { status?: string }) => {
        const rows = await api.list<Deployment>('/api/v1/deployments', { status: opts.status });
        out.list(rows, [
          { header: 'ID', value: (d) => d.id },
          { header: 'BUNDLE', value: deploymentBundle },
          { header: 'STATUS', value: (d) => d.status },
          { header: 'ENDED', value: (d) => `${ended(d.counts)}/${total(d.counts)}` },
          { header: 'COUNTS', value: (d) => countsLine(d.counts) },
          { header: 'CREATED', value: (d) => d.createdAt },
        ], 'No deployments.');
      }),
    );

  deployments
    .command('show <id>')
    .description('show a deployment and its executions')
    .option('--no-executions', 'leave out the execution list')
    .action(
      action(async ({ api, out }: CommandContext, id: string, opts: { executions: boolean }) => {
        const d = await api.get<Deployment>(deploymentPath(id));
        const executions = opts.executions ? await api.list<Execution>(`${deploymentPath(id)}/executions`) : undefined;
        if (out.json) return out.printJson(executions ? { ...d, executions } : d);
        showDeployment(out, d);
        if (executions) {
          out.line();
          out.list(executions, [
            { header: 'DEVICE', value: (e) => e.deviceId },
            { header: 'STATE', value: (e) => e.state },
            { header: 'UPDATED', value: (e) => e.updatedAt },
            { header: 'ERROR', value: (e) => e.error },
          ], 'No executions.');
        }
      }),
    );

  deployments
    .command('cancel <id>')
    .description('cancel a deployment: queued executions are cancelled')
    .action(
      action(async ({ api, out }: CommandContext, id: string) => {
        const d = await api.post<Deployment | undefined>(`${deploymentPath(id)}/cancel`);
        out.result(d ?? { id }, () => out.line(`Cancelled deployment ${id}${d?.status ? ` (now ${d.status})` : ''}.`));
      }),
    );

  return deployments;
}
