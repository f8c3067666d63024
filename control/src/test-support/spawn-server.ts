import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The `kernex` command as a fresh install links it (runs the built dist/). */
export const KERNEX_BIN = fileURLToPath(new URL('../../bin/kernex.js', import.meta.url));

/** A `kernex server` child process and what it logged. */
export interface ServerProcess {
  proc: ChildProcess;
  /** Parsed JSON log lines seen so far. */
  logs: Array<Record<string, unknown>>;
  stderr: string;
  /** Resolves with the ready line (the one with the bound ports), or rejects if the process exits first. */
  ready: Promise<{ httpPort: number; mqttPort: number; mqttsPort?: number; wsPort?: number; caFile?: string; readyMs: number; databaseMs: number; embeddedDatabase?: boolean }>;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs `kernex server` as a user would, with the given environment on top of ours.
 * `detached`: the server leads its own process group, as a shell's foreground job does
 * (so a test can signal the whole group, as Ctrl-C on a terminal does). `bin`: another
 * install's kernex.js (the production-install test). `wrap`: a command prefix that execs
 * the server in another context (a network namespace).
 */
export function spawnServer(env: Record<string, string>, args: string[] = ['server'], opts: { detached?: boolean; bin?: string; wrap?: string[] } = {}): ServerProcess {
  // DATABASE_URL only when the test passes one: CI sets it for the external-database test.
  const { DATABASE_URL: _ignored, ...inherited } = process.env;
  // `wrap`: a prefix that execs the server (`ip netns exec NAME`), so the child is still the server's process.
  const command = [...(opts.wrap ?? []), process.execPath, opts.bin ?? KERNEX_BIN, ...args];
  const proc = spawn(command[0]!, command.slice(1), {
    env: { ...inherited, LOG_LEVEL: 'info', KERNEX_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  const logs: Array<Record<string, unknown>> = [];
  const result: ServerProcess = {
    proc,
    logs,
    stderr: '',
    ready: undefined as never,
    exited: once(proc, 'close').then(([code, signal]) => ({ code, signal })) as ServerProcess['exited'],
  };
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    result.stderr += chunk;
  });
  result.ready = new Promise((resolve, reject) => {
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      // The ready line is the one carrying the bound ports and the start timings (its fields, not its words).
      if (typeof entry.httpPort === 'number' && typeof entry.mqttPort === 'number' && typeof entry.readyMs === 'number') resolve(entry as never);
    });
    void result.exited.then(({ code }) => reject(new Error(`kernex server exited with ${code}: ${result.stderr}`)));
  });
  result.ready.catch(() => {});
  return result;
}
