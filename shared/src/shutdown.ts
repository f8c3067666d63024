/** The part of a pino logger {@link stopOnSignals} uses. */
export interface ShutdownLogger {
  info(obj: object, msg: string): void;
  info(msg: string): void;
  error(obj: object, msg: string): void;
  error(msg: string): void;
}

/**
 * Orderly exit on SIGTERM/SIGINT for `kernex server` and `kernex-agent`: runs
 * `stop` once, exits 0 when it resolves, 1 when it fails or takes longer than
 * `limitMs` (a second signal changes nothing). `stopping()` tells whether a
 * signal has come.
 */
export function stopOnSignals(opts: { log: ShutdownLogger; limitMs: number; stop: () => Promise<void> }): { stopping(): boolean } {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    opts.log.info({ signal }, 'shutting down');
    setTimeout(() => {
      opts.log.error('shutdown took too long; exiting');
      process.exit(1);
    }, opts.limitMs).unref();
    opts.stop().then(
      () => {
        opts.log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        opts.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return { stopping: () => stopping };
}
