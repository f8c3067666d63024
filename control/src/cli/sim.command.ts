import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

/**
 * Where the simulator's entry lives. The simulator is the agent's device
 * model, so it ships in @kernex/agent (`kernex-agent sim`); control must not
 * import agent code (layers: control imports shared and broker only), so
 * `kernex sim` resolves the agent package's bin path at run time and runs it
 * as a child process.
 */
export function simEntry(): string {
  return fileURLToPath(import.meta.resolve('@kernex/agent/sim-cli'));
}

/** `kernex sim ...`: every argument after `sim` goes to `kernex-agent sim` unchanged. */
export function simCommand(): Command {
  return new Command('sim')
    .description('simulate N devices against a server (runs kernex-agent sim; see kernex sim --help)')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(async () => {
      // Raw argv, not commander's parse: program-level flags such as --json belong to the simulator here.
      const args = process.argv.slice(process.argv.indexOf('sim') + 1);
      const child = spawn(process.execPath, [simEntry(), ...args], { stdio: 'inherit' });
      const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
      process.on('SIGINT', forward('SIGINT'));
      process.on('SIGTERM', forward('SIGTERM'));
      const code = await new Promise<number>((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
      process.exit(code);
    });
}
