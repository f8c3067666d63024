import { Command, Option } from 'commander';
import { action, type CommandContext } from './context.js';

interface ApiKey {
  id: string;
  name: string;
  role: string;
  keyPrefix: string;
  key?: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** `kernex keys create|ls|revoke`: admin API keys (DESIGN §6). */
export function keysCommand(): Command {
  const keys = new Command('keys').description('admin API keys (admin role)');

  keys
    .command('create <name>')
    .description('create an API key; the key is printed once')
    .addOption(new Option('--role <role>', 'what the key may do').choices(['viewer', 'operator', 'admin']).default('viewer'))
    .action(
      action(async ({ api, out }: CommandContext, name: string, opts: { role: string }) => {
        const key = await api.post<ApiKey>('/api/v1/api-keys', { name, role: opts.role });
        out.result(key, () => {
          out.line(`Created API key ${key.id} '${key.name}' (${key.role}). The key is shown only now:`);
          out.line(key.key);
        });
      }),
    );

  keys
    .command('ls')
    .description('list API keys (never their secrets)')
    .action(
      action(async ({ api, out }: CommandContext) => {
        const rows = await api.list<ApiKey>('/api/v1/api-keys');
        out.list(rows, [
          { header: 'ID', value: (k) => k.id },
          { header: 'NAME', value: (k) => k.name },
          { header: 'ROLE', value: (k) => k.role },
          { header: 'PREFIX', value: (k) => k.keyPrefix },
          { header: 'CREATED', value: (k) => k.createdAt },
          { header: 'LAST USED', value: (k) => k.lastUsedAt },
          { header: 'REVOKED', value: (k) => k.revokedAt },
        ], 'No API keys.');
      }),
    );

  keys
    .command('revoke <id>')
    .description('revoke an API key at once')
    .action(
      action(async ({ api, out }: CommandContext, id: string) => {
        const key = await api.delete<ApiKey>(`/api/v1/api-keys/${encodeURIComponent(id)}`);
        out.result(key, () => out.line(`Revoked API key ${key.id} '${key.name}'.`));
      }),
    );

  return keys;
}
