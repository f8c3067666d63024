import { InvalidArgumentError, type Command } from 'commander';
import { loadCliConfig, type GlobalOptions } from './cli-config.js';
import { CliError } from './cli-error.js';
import { ApiClient } from './api-client.js';
import { Output } from './output.js';

/** What an operator command works with. */
export interface CommandContext {
  api: ApiClient;
  out: Output;
}

/**
 * Wraps a command's action: builds the client from flags/env/config file and
 * turns any failure into one line on stderr and a non-zero exit code.
 */
export function action<A extends unknown[]>(run: (ctx: CommandContext, ...args: A) => Promise<void>, opts: { needsKey?: boolean } = {}) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const globals = cmd.optsWithGlobals<GlobalOptions>();
    try {
      const config = loadCliConfig(globals);
      if (!config.apiKey && opts.needsKey !== false) {
        throw new CliError(`no API key: set KERNEX_API_KEY, pass --api-key, or put "apiKey" in ${config.file}`);
      }
      await run({ api: new ApiClient(config.url, config.apiKey), out: new Output(Boolean(globals.json)) }, ...(args.slice(0, -1) as A));
    } catch (err) {
      if (err instanceof CliError) {
        process.stderr.write(`kernex: ${err.message}\n`);
        process.exitCode = err.exitCode;
        return;
      }
      throw err;
    }
  };
}

/** Parses a positive whole number option; commander reports a bad one in one line. */
export function positiveInt(raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number of at least 1.');
  return n;
}

/** Collects a repeatable option into a list. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
