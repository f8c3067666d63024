import { Command, InvalidArgumentError } from 'commander';
import { action, collect, positiveInt, type CommandContext } from './context.js';

interface EnrollmentToken {
  id?: string;
  token?: string;
  uses: number;
  usesLeft?: number;
  expiresAt: string;
  tags?: string[];
  createdAt?: string;
  revokedAt?: string | null;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90`, `90s`, `15m`, `24h`, `7d` → seconds. */
export function parseDuration(raw: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(raw.trim());
  const n = m ? Number(m[1]) * UNITS[m[2] || 's']! : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a duration like 3600, 90s, 15m, 24h or 7d.');
  return n;
}

/** `kernex tokens create|ls|revoke`: enrollment tokens (DESIGN §2, admin role). */
export function tokensCommand(): Command {
  const tokens = new Command('tokens').description('enrollment tokens that let devices register already accepted (admin role)');

  tokens
    .command('create')
    .description('create an enrollment token; the token is printed once')
    .option('--uses <n>', 'how many devices may register with it', positiveInt, 1)
    .option('--expires <duration>', 'valid for this long (e.g. 3600, 15m, 24h, 7d)', parseDuration, 86400)
    .option('--tag <tag>', 'tag given to devices that register with it (repeatable)', collect)
    .action(
      action(async ({ api, out }: CommandContext, opts: { uses: number; expires: number; tag?: string[] }) => {
        const t = await api.post<EnrollmentToken>('/api/v1/enrollment-tokens', { uses: opts.uses, expiresInS: opts.expires, ...(opts.tag ? { tags: opts.tag } : {}) });
        out.result(t, () => {
          out.line(`Created an enrollment token for ${t.uses} device(s), valid until ${t.expiresAt}. It is shown only now:`);
          out.line(t.token);
        });
      }),
    );

  tokens
    .command('ls')
    .description('list enrollment tokens (never the tokens themselves)')
    .action(
      action(async ({ api, out }: CommandContext) => {
        const rows = await api.list<EnrollmentToken>('/api/v1/enrollment-tokens');
        out.list(rows, [
          { header: 'ID', value: (t) => t.id },
          { header: 'USES', value: (t) => (t.usesLeft === undefined ? t.uses : `${t.usesLeft}/${t.uses} left`) },
          { header: 'EXPIRES', value: (t) => t.expiresAt },
          { header: 'TAGS', value: (t) => t.tags },
          { header: 'REVOKED', value: (t) => t.revokedAt },
        ], 'No enrollment tokens.');
      }),
    );

  tokens
    .command('revoke <id>')
    .description('revoke an enrollment token')
    .action(
      action(async ({ api, out }: CommandContext, id: string) => {
        const t = await api.delete<EnrollmentToken | undefined>(`/api/v1/enrollment-tokens/${encodeURIComponent(id)}`);
        out.result(t ?? { id }, () => out.line(`Revoked enrollment token ${id}.`));
      }),
    );

  return tokens;
}
