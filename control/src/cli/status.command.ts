import { Command } from 'commander';
import { action, type CommandContext } from './context.js';

interface Readiness {
  status: string;
  checks: Record<string, boolean>;
}

/** `kernex status`: is the server up and ready (its /readyz checks). */
export function statusCommand(): Command {
  return new Command('status')
    .description('show whether the server is up and ready (database, broker); needs no key')
    .action(
      action(
        async ({ api, out }: CommandContext) => {
          // /readyz answers 503 with its checks when not ready; that is an answer, not a failure.
          const ready = await api.request<Readiness>('GET', '/readyz', { okStatuses: [503] });
          out.result({ url: api.baseUrl, ...ready }, () =>
            out.record([
              ['server', api.baseUrl],
              ['status', ready.status],
              ...Object.entries(ready.checks).map(([k, v]): [string, unknown] => [k, v ? 'ok' : 'failing']),
            ]),
          );
        },
        { needsKey: false },
      ),
    );
}
