import pino, { type Logger } from 'pino';

/**
 * The root logger: JSON lines on stdout, or pino-pretty when stdout is a
 * terminal (a person is reading) and `format` is `auto` (KERNEX_LOG_FORMAT).
 * Children carry `mod` per module.
 */
export function createLogger(level: string, name = 'kernex', format: 'auto' | 'json' = 'auto'): Logger {
  if (process.stdout.isTTY && format !== 'json') {
    return pino({ name, level, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  // Synchronous writes: with pino's default asynchronous stdout, a line still waiting on a full
  // pipe at exit can come out after a later one, or not at all (the last 'stopped' line was lost).
  return pino({ name, level }, pino.destination({ dest: 1, sync: true }));
}
