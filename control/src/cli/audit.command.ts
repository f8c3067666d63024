import { Command } from 'commander';
import { action, positiveInt, type CommandContext } from './context.js';

interface AuditEntry {
  id: string;
  at: string;
  actor: { kind: string; id: string | null; name: string | null };
  action: string;
  targetId: string | null;
  statusCode: number;
  result: string;
  errorCode: string | null;
}

/** `kernex audit ls`: the audit log, newest first (admin role). */
export function auditCommand(): Command {
  const audit = new Command('audit').description('the audit log of changes (admin role)');

  audit
    .command('ls')
    .description('list audit entries, newest first')
    .option('--limit <n>', 'how many entries', positiveInt, 50)
    .option('--actor <id>', 'only entries by this API key id or device id')
    .option('--failures', 'only refused or failed changes')
    .action(
      action(async ({ api, out }: CommandContext, opts: { limit: number; actor?: string; failures?: boolean }) => {
        const rows = await api.list<AuditEntry>('/api/v1/audit', { actor: opts.actor, result: opts.failures ? 'failure' : undefined }, opts.limit);
        out.list(rows, [
          { header: 'TIME', value: (e) => e.at },
          { header: 'ACTOR', value: (e) => e.actor.name ?? (e.actor.kind === 'anonymous' ? 'anonymous' : e.actor.id) },
          { header: 'ACTION', value: (e) => e.action },
          { header: 'TARGET', value: (e) => e.targetId },
          { header: 'STATUS', value: (e) => e.statusCode },
          { header: 'RESULT', value: (e) => (e.errorCode ? `${e.result} ${e.errorCode}` : e.result) },
        ], 'No audit entries.');
      }),
    );

  return audit;
}
