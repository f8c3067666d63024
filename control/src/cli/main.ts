import { Command } from 'commander';
import { onBrokenPipe } from '@kernex/shared';
import { simCommand } from './sim.command.js';
import { auditCommand } from './audit.command.js';
import { bundlesCommand } from './bundles.command.js';
import { deployCommand } from './deploy.command.js';
import { deploymentsCommand } from './deployments.command.js';
import { devicesCommand } from './devices.command.js';
import { keysCommand } from './keys.command.js';
import { loginCommand, logoutCommand } from './login.command.js';
import { backupCommand, migrateCommand, restoreCommand } from './ops.command.js';
import { statusCommand } from './status.command.js';
import { tokensCommand } from './tokens.command.js';

// The AWS SDK (S3 bundle storage, backup, restore) warns on stderr, at each start, that its releases
// after January 2027 need Node 22: the lockfile pins one that supports Node 20, and a failed start's
// stderr stays the operator's one line. Set once, here, where the process starts.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// `kernex devices ls | head -1`: once the reader is gone there is nothing left to say, so an
// operator command ends at once, quietly, with the exit code it already has. `kernex server`
// keeps serving: a closed log pipe must not take devices down (pino drops its lines).
let serving = false;
onBrokenPipe(() => {
  if (!serving) process.exit();
});

const program = new Command('kernex')
  .description('Kernex: push-based fleet manager for edge devices')
  .version('0.1.0')
  .option('--url <url>', 'server URL (default: $KERNEX_URL, the config file, or http://127.0.0.1:8080)')
  .option('--api-key <key>', 'API key (default: $KERNEX_API_KEY or the config file)')
  .option('--json', 'print JSON instead of tables')
  .showHelpAfterError('(add --help for usage)');

program
  .command('server')
  .description('run the Kernex server (HTTP API, embedded MQTT broker, embedded PostgreSQL unless DATABASE_URL is set)')
  .action(async () => {
    serving = true;
    const { runServer } = await import('../main.js');
    await runServer();
  });

program.addCommand(simCommand());
for (const cmd of [backupCommand(), restoreCommand(), migrateCommand()]) program.addCommand(cmd);
for (const cmd of [loginCommand(), logoutCommand(), statusCommand(), devicesCommand(), tokensCommand(), bundlesCommand(), deployCommand(), deploymentsCommand(), keysCommand(), auditCommand()]) {
  program.addCommand(cmd);
}

await program.parseAsync(process.argv);
