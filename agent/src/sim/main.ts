import { createRequire } from 'node:module';
import { onBrokenPipe } from '@kernex/shared';
import { loadSimEnvironment } from '../config.js';
import { parseSimArgs, SIM_USAGE, summaryLine } from './args.js';
import { SimulationError } from '../errors.js';
import { runSimulation, type Simulation } from './simulation.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** One line on stderr and exit 1: a usage or connection error (the CLI's convention, DESIGN §5). */
function fail(message: string): never {
  process.stderr.write(`kernex sim: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let stopFleet: ((why: string) => void) | undefined;
  // `kernex sim | head -1`: the reader is gone, so stop the fleet in order as on SIGTERM
  // (devices disconnect cleanly), without a stack trace; before the fleet runs, just end.
  onBrokenPipe(() => (stopFleet ? stopFleet('output closed') : process.exit(0)));
  let args;
  try {
    args = parseSimArgs(process.argv.slice(process.argv[2] === 'sim' ? 3 : 2), loadSimEnvironment());
  } catch (err) {
    fail(`${(err as Error).message} (kernex sim --help lists the options)`);
  }
  if (args === 'help') {
    process.stdout.write(`${SIM_USAGE}\n`);
    return;
  }
  const { durationS, summaryS, json, ...options } = args;
  let sim: Simulation;
  try {
    sim = await runSimulation({ ...options, version });
  } catch (err) {
    if (err instanceof SimulationError) fail(err.message);
    throw err;
  }
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
  const once = (why: string): void => {
    if (ending) return;
    ending = true;
    void finish(why);
  };
  stopFleet = once;
  process.on('SIGINT', () => once('SIGINT'));
  process.on('SIGTERM', () => once('SIGTERM'));
  if (durationS !== undefined) setTimeout(() => once(`${durationS}s elapsed`), durationS * 1000);
}

await main();
