import { createRequire } from 'node:module';
import { parseSimArgs, SIM_USAGE, summaryLine } from './args.js';
import { runSimulation } from './simulation.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

async function main(): Promise<void> {
  let args;
  try {
    args = parseSimArgs(process.argv.slice(process.argv[2] === 'sim' ? 3 : 2));
  } catch (err) {
    process.stderr.write(`kernex sim: ${(err as Error).message}\n${SIM_USAGE}\n`);
    process.exit(2);
  }
  if (args === 'help') {
    process.stdout.write(`${SIM_USAGE}\n`);
    return;
  }
  const { durationS, summaryS, json, ...options } = args;
  const sim = await runSimulation({ ...options, version });
  sim.on('error', (err: Error) => process.stderr.write(`kernex sim: worker error: ${err.message}\n`));
  const ticker = summaryS > 0 ? setInterval(() => process.stderr.write(`${summaryLine(sim.stats())}\n`), summaryS * 1000) : undefined;
  const finish = async (why: string): Promise<void> => {
    clearInterval(ticker);
    process.stderr.write(`kernex sim: ${why}; disconnecting ${sim.stats().started} devices\n`);
    const final = await sim.stop();
    process.stdout.write(json ? `${JSON.stringify(final)}\n` : `${summaryLine(final)}\n`);
    process.exit(0);
  };
  let ending = false;
  const once = (why: string) => () => {
    if (ending) return;
    ending = true;
    void finish(why);
  };
  process.on('SIGINT', once('SIGINT'));
  process.on('SIGTERM', once('SIGTERM'));
  if (durationS !== undefined) setTimeout(once(`${durationS}s elapsed`), durationS * 1000);
}

await main();
