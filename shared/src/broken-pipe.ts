/**
 * What a process does when the reader of its output goes away
 * (`kernex devices ls | head -1`). A C program would die of SIGPIPE without a
 * word; Node ignores SIGPIPE, so the write fails with EPIPE instead, and an
 * `'error'` on stdout or stderr without a listener is an uncaught exception
 * that prints a stack trace. Every entry point (`kernex`, `kernex-agent`,
 * `kernex sim`) installs this once, first thing.
 *
 * `onBroken` runs once, on the first broken stream; the streams keep their
 * listener, so later writes to a closed pipe stay silent. Any other stream
 * error is rethrown: it is a real failure and must not be hidden.
 */
export function onBrokenPipe(onBroken: (stream: 'stdout' | 'stderr') => void, streams: { stdout: Pick<NodeJS.EventEmitter, 'on'>; stderr: Pick<NodeJS.EventEmitter, 'on'> } = process): void {
  let broken = false;
  for (const name of ['stdout', 'stderr'] as const) {
    streams[name].on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
      if (broken) return;
      broken = true;
      onBroken(name);
    });
  }
}
