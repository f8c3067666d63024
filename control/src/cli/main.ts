import { Command } from 'commander';
import { simCommand } from './sim.command.js';

const program = new Command('kernex')
  .description('Kernex: push-based fleet manager for edge devices')
  .version('0.1.0');

program
  .command('server')
  .description('run the Kernex server (HTTP API, embedded MQTT broker, embedded PostgreSQL unless DATABASE_URL is set)')
  .action(async () => {
    const { runServer } = await import('../main.js');
    await runServer();
  });

program.addCommand(simCommand());

await program.parseAsync(process.argv);
