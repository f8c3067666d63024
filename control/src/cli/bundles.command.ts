import { BUNDLE_NAME_PATTERN, expectedForFormat, expectedForPattern, SEMVER_PATTERN } from '@kernex/shared';
import { Command } from 'commander';
import { action, type CommandContext } from './context.js';
import { CliError } from './cli-error.js';
import { progressBar } from './progress.js';

/** A bundle as the API answers it (DESIGN §4). */
export interface Bundle {
  id: string;
  name: string;
  version: string;
  sha256: string;
  size: number;
  signature?: string;
  description?: string | null;
  createdAt?: string;
}

const path = (id: string): string => `/api/v1/bundles/${encodeURIComponent(id)}`;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** How a person names a bundle: `name@version` (DESIGN §5), never its id alone. */
export const bundleLabel = (b: { name: string; version: string }): string => `${b.name}@${b.version}`;

/** A device's installed bundles (name → version) as `app@1.2.0` items. */
export const installedBundles = (bundles: Record<string, string> | undefined): string[] => Object.entries(bundles ?? {}).map(([name, version]) => bundleLabel({ name, version }));

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EXAMPLE = 'app@1.2.0';

/**
 * Checks a bundle reference before any request, so a typo is told what was expected in
 * words (never a regular expression): a bundle id (UUID) or `name@version`.
 */
export function parseBundleRef(ref: string): { id: string } | { name: string; version: string } {
  const at = ref.lastIndexOf('@');
  if (at < 0) {
    if (UUID.test(ref)) return { id: ref };
    throw new CliError(`'${ref}' is not a bundle: expected name@version such as ${EXAMPLE}, or a bundle id (${expectedForFormat('uuid')})`);
  }
  const [name, version] = [ref.slice(0, at), ref.slice(at + 1)];
  if (!new RegExp(BUNDLE_NAME_PATTERN).test(name)) {
    throw new CliError(`'${ref}': '${name}' is not a bundle name: expected ${expectedForPattern(BUNDLE_NAME_PATTERN)}`);
  }
  if (!new RegExp(SEMVER_PATTERN).test(version)) {
    throw new CliError(`'${ref}': '${version}' is not a version: expected ${expectedForPattern(SEMVER_PATTERN)}`);
  }
  return { name, version };
}

/** A bundle from an id or `name@version` (looked up in the bundle list). */
export async function resolveBundle(api: CommandContext['api'], ref: string): Promise<Bundle> {
  const parsed = parseBundleRef(ref);
  if ('id' in parsed) return api.get<Bundle>(path(parsed.id));
  const { name, version } = parsed;
  const all = await api.list<Bundle>('/api/v1/bundles', { name });
  const found = all.find((b) => b.name === name && b.version === version);
  if (!found) {
    const known = all.map((b) => b.version);
    throw new CliError(`no bundle ${name}@${version}${known.length ? ` (${name} has ${known.slice(0, 5).join(', ')}${known.length > 5 ? ', ...' : ''})` : ` (no bundle is named ${name})`}`);
  }
  return found;
}

/** `kernex bundles push|ls|show|rm` (DESIGN §4). */
export function bundlesCommand(): Command {
  const bundles = new Command('bundles').description('software bundles: upload, list, inspect, delete');

  bundles
    .command('push <file>')
    .description('upload a bundle (.tar.gz with manifest.json); the server checks and signs it')
    .action(
      action(async ({ api, out }: CommandContext, file: string) => {
        const bar = progressBar('uploading |{bar}| {percentage}% {sent}/{size}', 1, { sent: '0 B', size: '?' });
        let b: Bundle;
        try {
          b = await api.upload<Bundle>('/api/v1/bundles', file, 'application/gzip', (sent, total) =>
            bar.update(sent, total, { sent: formatBytes(sent), size: formatBytes(total) }),
          );
        } finally {
          bar.stop();
        }
        out.result(b, () => out.line(`Uploaded ${bundleLabel(b)} (${formatBytes(b.size)}, sha256 ${b.sha256}, id ${b.id}).`));
      }),
    );

  bundles
    .command('ls')
    .description('list bundles')
    .option('--name <name>', 'only bundles with this name')
    .action(
      action(async ({ api, out }: CommandContext, opts: { name?: string }) => {
        const rows = await api.list<Bundle>('/api/v1/bundles', { name: opts.name });
        out.list(rows, [
          { header: 'BUNDLE', value: bundleLabel },
          { header: 'SIZE', value: (b) => formatBytes(b.size) },
          { header: 'SHA256', value: (b) => b.sha256.slice(0, 12) },
          { header: 'CREATED', value: (b) => b.createdAt },
          { header: 'ID', value: (b) => b.id },
        ], 'No bundles.');
      }),
    );

  bundles
    .command('show <bundle>')
    .description('show a bundle (by id or name@version)')
    .action(
      action(async ({ api, out }: CommandContext, ref: string) => {
        const b = await resolveBundle(api, ref);
        out.result(b, () =>
          out.record([
            ['bundle', bundleLabel(b)],
            ['id', b.id],
            ['name', b.name],
            ['version', b.version],
            ['size', `${formatBytes(b.size)} (${b.size} bytes)`],
            ['sha256', b.sha256],
            ['signature', b.signature],
            ['description', b.description],
            ['created', b.createdAt],
          ]),
        );
      }),
    );

  bundles
    .command('rm <bundle>')
    .description('delete a bundle (by id or name@version)')
    .action(
      action(async ({ api, out }: CommandContext, ref: string) => {
        const b = await resolveBundle(api, ref);
        await api.delete(path(b.id));
        out.result({ id: b.id, deleted: true }, () => out.line(`Deleted bundle ${bundleLabel(b)} (${b.id}).`));
      }),
    );

  return bundles;
}
