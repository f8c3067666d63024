import { Command, InvalidArgumentError, Option } from 'commander';
import { action, collect, positiveInt, type CommandContext } from './context.js';
import { CliError } from './cli-error.js';
import { installedBundles } from './bundles.command.js';

/** A device as `GET /api/v1/devices/{id}` answers it (DESIGN §2). */
export interface Device {
  id: string;
  name: string | null;
  status: string;
  online: boolean;
  lastSeenAt: string | null;
  tags: string[];
  hardware?: Record<string, unknown> | null;
  bundles?: Record<string, string>;
  createdAt: string;
}

/** One telemetry sample as `GET /api/v1/devices/{id}/telemetry` answers it (DESIGN §2, §3). */
export interface TelemetrySample {
  at: string;
  telemetry: { cpu?: number; mem?: [number, number]; disk?: [number, number]; load?: number[]; up?: number; v?: string; [k: string]: unknown };
}

const UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since`: a duration back from now (`30s`, `15m`, `2h`, `7d`) or an ISO 8601 date-time. */
export function parseSince(raw: string, now = Date.now()): string {
  const m = /^(\d+)([smhd])$/.exec(raw.trim());
  const ms = m ? now - Number(m[1]) * UNITS_MS[m[2]!]! : Date.parse(raw);
  if (!Number.isFinite(ms) || ms < Date.parse('0001-01-01T00:00:00Z')) {
    throw new InvalidArgumentError('must be a duration such as 30m, 2h or 7d, or an ISO 8601 date-time such as 2026-01-31T12:00:00Z.');
  }
  return new Date(ms).toISOString();
}

const pair = (p: [number, number] | undefined): string | undefined => (p ? `${p[0]}/${p[1]}` : undefined);

const path = (id: string): string => `/api/v1/devices/${encodeURIComponent(id)}`;

function showDevice(out: CommandContext['out'], d: Device): void {
  out.record([
    ['id', d.id],
    ['name', d.name],
    ['status', d.status],
    ['online', d.online ? 'yes' : 'no'],
    ['last seen', d.lastSeenAt],
    ['tags', d.tags],
    ['bundles', installedBundles(d.bundles)],
    ['hardware', d.hardware],
    ['created', d.createdAt],
  ]);
}

/** `kernex devices ls|show|accept|reject|rm|tag|telemetry` (DESIGN §2). */
export function devicesCommand(): Command {
  const devices = new Command('devices').description('devices: list, inspect, accept, reject, decommission, tag');

  devices
    .command('ls')
    .description('list devices')
    .addOption(new Option('--status <status>', 'only devices in this status').choices(['pending', 'accepted', 'rejected', 'decommissioned']))
    .option('--tag <tag>', 'only devices with this tag')
    .addOption(new Option('--online', 'only connected devices').conflicts('offline'))
    .option('--offline', 'only disconnected devices')
    .option('--limit <n>', 'at most this many devices', positiveInt)
    .action(
      action(async ({ api, out }: CommandContext, opts: { status?: string; tag?: string; online?: boolean; offline?: boolean; limit?: number }) => {
        const online = opts.online ? 'true' : opts.offline ? 'false' : undefined;
        const rows = await api.list<Device>('/api/v1/devices', { status: opts.status, tag: opts.tag, online }, opts.limit);
        out.list(rows, [
          { header: 'ID', value: (d) => d.id },
          { header: 'NAME', value: (d) => d.name },
          { header: 'STATUS', value: (d) => d.status },
          { header: 'ONLINE', value: (d) => (d.online ? 'yes' : 'no') },
          { header: 'LAST SEEN', value: (d) => d.lastSeenAt },
          { header: 'TAGS', value: (d) => d.tags },
          { header: 'BUNDLES', value: (d) => installedBundles(d.bundles) },
        ], 'No devices.');
      }),
    );

  devices
    .command('show <id>')
    .description("show one device's details")
    .action(
      action(async ({ api, out }: CommandContext, id: string) => {
        const d = await api.get<Device>(path(id));
        out.result(d, () => showDevice(out, d));
      }),
    );

  for (const [verb, doing] of [['accept', 'Accepted'], ['reject', 'Rejected']] as const) {
    devices
      .command(`${verb} <id>`)
      .description(`${verb} a pending device`)
      .action(
        action(async ({ api, out }: CommandContext, id: string) => {
          const d = await api.post<Device | undefined>(`${path(id)}/${verb}`);
          out.result(d ?? { id }, () => out.line(`${doing} device ${id}${d?.status ? ` (now ${d.status})` : ''}.`));
        }),
      );
  }

  devices
    .command('rm <id>')
    .description('decommission a device: it is disconnected at once and refused from then on')
    .action(
      action(async ({ api, out }: CommandContext, id: string) => {
        const d = await api.delete<Device | undefined>(path(id));
        out.result(d ?? { id, status: 'decommissioned' }, () => out.line(`Decommissioned device ${id}.`));
      }),
    );

  devices
    .command('tag <id> [tags...]')
    .description("set a device's tags (the given list), or change them with --add / --remove")
    .option('--add <tag>', 'add a tag (repeatable)', collect)
    .option('--remove <tag>', 'remove a tag (repeatable)', collect)
    .action(
      action(async ({ api, out }: CommandContext, id: string, tags: string[], opts: { add?: string[]; remove?: string[] }) => {
        if (tags.length === 0 && !opts.add && !opts.remove) throw new CliError('give the tags to set, or --add / --remove');
        if (tags.length > 0 && (opts.add || opts.remove)) throw new CliError('give either the full tag list or --add / --remove, not both');
        let next = tags;
        if (opts.add || opts.remove) {
          const current = (await api.get<Device>(path(id))).tags ?? [];
          const removed = new Set(opts.remove ?? []);
          next = [...new Set([...current, ...(opts.add ?? [])])].filter((t) => !removed.has(t));
        }
        const d = await api.patch<Device>(path(id), { tags: next });
        out.result(d, () => out.line(`Device ${id} tags: ${(d?.tags ?? next).join(', ') || '(none)'}.`));
      }),
    );

  devices
    .command('telemetry <id>')
    .description("a device's telemetry, newest first")
    .option('--since <when>', 'only samples since then: a duration back (30m, 2h, 7d) or an ISO 8601 date-time', (raw: string) => parseSince(raw))
    .option('--limit <n>', 'at most this many samples (default 20)', positiveInt)
    .action(
      action(async ({ api, out }: CommandContext, id: string, opts: { since?: string; limit?: number }) => {
        const rows = await api.list<TelemetrySample>(`${path(id)}/telemetry`, { order: 'desc', from: opts.since }, opts.limit ?? 20);
        out.list(rows, [
          { header: 'AT', value: (r) => r.at },
          { header: 'CPU%', value: (r) => r.telemetry.cpu },
          { header: 'MEM', value: (r) => pair(r.telemetry.mem) },
          { header: 'DISK', value: (r) => pair(r.telemetry.disk) },
          { header: 'LOAD', value: (r) => r.telemetry.load },
          { header: 'UP(S)', value: (r) => r.telemetry.up },
          { header: 'AGENT', value: (r) => r.telemetry.v },
        ], 'No telemetry.');
      }),
    );

  return devices;
}
