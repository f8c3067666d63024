import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { loadCliConfig, type GlobalOptions } from './cli-config.js';
import { CliError } from './cli-error.js';

/**
 * Where the simulator's entry lives. The simulator is the agent's device
 * model, so it ships in @kernex/agent (bin `kernex-sim`); control must not
 * import agent code (layers: control imports shared and broker only), so
 * `kernex sim` resolves the agent package's bin path at run time and runs it
 * as a child process.
 */
export function simEntry(): string {
  return fileURLToPath(import.meta.resolve('@kernex/agent/sim-cli'));
}

/**
 * `kernex sim ...`: every argument after `sim` goes to `kernex-sim` unchanged. The
 * server and key come from where every operator command finds them (`--url`/`--api-key`
 * before `sim`, `KERNEX_URL`/`KERNEX_API_KEY`, the config file; DESIGN §7), handed to the
 * simulator as `KERNEX_URL`/`KERNEX_API_KEY`; flags after `sim` still win there.
 */
export function simCommand(): Command {
  return new Command('sim')
    .description('simulate N devices against a server (runs kernex-sim; see kernex sim --help)')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(async (_args: string[], _opts: unknown, cmd: Command) => {
      // Raw argv, not commander's parse: program-level flags such as --json belong to the simulator here.
      const args = process.argv.slice(process.argv.indexOf('sim') + 1);
      let env: NodeJS.ProcessEnv;
      try {
        const config = loadCliConfig(cmd.optsWithGlobals<GlobalOptions>());
        env = { ...process.env, KERNEX_URL: config.url, ...(config.apiKey ? { KERNEX_API_KEY: config.apiKey } : {}) };
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        process.stderr.write(`kernex: ${err.message}\n`);
        process.exit(err.exitCode);
      }
      const child = spawn(process.execPath, [simEntry(), ...args], { stdio: 'inherit', env });
      const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
      process.on('SIGINT', forward('SIGINT'));
      process.on('SIGTERM', forward('SIGTERM'));
      const code = await new Promise<number>((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
      process.exit(code);
    });
}
