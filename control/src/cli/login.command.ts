import fs from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { configFilePath, loadCliConfig, type GlobalOptions } from './cli-config.js';
import { CliError } from './cli-error.js';
import { ApiClient } from './http-client.js';
import { Output } from './output.js';

interface Who {
  role: string;
  keyName: string;
}

/** Turns a failure into the one-line message and exit code every command uses. */
function report(err: unknown): void {
  if (!(err instanceof CliError)) throw err;
  process.stderr.write(`kernex: ${err.message}\n`);
  process.exitCode = err.exitCode;
}

/**
 * `kernex login`: checks the server URL and API key (from --url/--api-key or
 * KERNEX_URL/KERNEX_API_KEY) against the server, then writes them to the config
 * file every command reads (DESIGN §7), mode 0600 since it holds a key.
 */
export function loginCommand(): Command {
  return new Command('login')
    .description('check a server URL and API key, then save them in the config file every kernex command reads')
    .action(async (_opts: unknown, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      try {
        const config = loadCliConfig(globals);
        if (!config.apiKey) throw new CliError('no API key: pass --api-key or set KERNEX_API_KEY (the key the server printed at its first start)');
        const who = await new ApiClient(config.url, config.apiKey).get<Who>('/api/v1/session');
        const file = configFilePath();
        await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
        await fs.writeFile(file, `${JSON.stringify({ url: config.url, apiKey: config.apiKey }, null, 2)}\n`, { mode: 0o600 });
        await fs.chmod(file, 0o600);
        const out = new Output(Boolean(globals.json));
        out.result({ url: config.url, role: who.role, keyName: who.keyName, file }, () =>
          out.line(`logged in to ${config.url} as ${who.keyName} (${who.role}); saved in ${file}`),
        );
      } catch (err) {
        report(err);
      }
    });
}

/** `kernex logout`: forgets the saved key (the URL stays), so commands need a key again. */
export function logoutCommand(): Command {
  return new Command('logout').description('remove the API key saved by kernex login').action(async () => {
    try {
      const file = configFilePath();
      let saved: Record<string, unknown>;
      try {
        saved = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
      }
      delete saved.apiKey;
      await fs.writeFile(file, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600 });
    } catch (err) {
      report(err);
    }
  });
}
