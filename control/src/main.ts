import { stopOnSignals } from '@kernex/shared';
import { ConfigError, loadConfig } from './config.js';
import { StartupError } from './errors.js';
import { createLogger } from './logger.js';
import { readyLines, startServer } from './server.js';

/** Longest an orderly shutdown may take before the process gives up waiting (the contract says 10 s). */
const SHUTDOWN_LIMIT_MS = 9000;

/**
 * `kernex server`: loads the configuration, boots, and stops in order on
 * SIGTERM/SIGINT. Bad start conditions print one line on stderr and exit 1.
 */
export async function runServer(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`kernex server: ${p}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, 'kernex', config.logFormat);

  // A signal during start waits for the start to finish (or fail), then closes what it opened.
  const starting = startServer(config, log);
  stopOnSignals({
    log,
    limitMs: SHUTDOWN_LIMIT_MS,
    stop: async () => {
      const server = await starting.catch(() => undefined);
      await server?.close();
    },
  });

  try {
    const server = await starting;
    process.stderr.write(readyLines(server.apiUrl, server.firstAdminKey, config.adminKey !== undefined));
  } catch (err) {
    // One line for the operator; the stack only at debug (LOG_LEVEL=debug), never a FATAL block first.
    const message =
      err instanceof StartupError
        ? err.message
        : `unexpected error: ${err instanceof Error ? err.message : String(err)} (LOG_LEVEL=debug shows where)`;
    log.debug({ err }, 'start failed');
    process.stderr.write(`kernex server: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
    process.exit(1);
  }
}
