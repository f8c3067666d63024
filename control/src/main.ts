import { ConfigError, loadConfig } from './config.js';
import { StartupError } from './errors.js';
import { createLogger } from './logger.js';
import { startServer, type RunningServer } from './server.js';

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
  const log = createLogger(config.logLevel);

  let server: RunningServer | undefined;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const limit = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS);
    limit.unref();
    void (server?.close() ?? Promise.resolve()).then(
      () => {
        log.info('stopped');
        log.flush?.();
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  try {
    server = await startServer(config, log);
  } catch (err) {
    const message = err instanceof StartupError ? err.message : `unexpected error: ${(err as Error).stack ?? String(err)}`;
    log.fatal({ err }, 'start failed');
    process.stderr.write(`kernex server: ${message}\n`);
    process.exit(1);
  }
  if (stopping) {
    // A signal arrived while starting: finish the stop now that there is something to close.
    stopping = false;
    stop('SIGTERM');
  }
}
