import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The `kernex-agent` command as an install links it (runs the built dist/). */
export const AGENT_BIN = fileURLToPath(new URL('../../../agent/bin/kernex-agent.js', import.meta.url));

type LogLine = Record<string, unknown> & { msg?: string };

/** A running `kernex-agent` child process and what it logged. */
export interface AgentProcess {
  proc: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: LogLine[];
  stderr: string;
  /**
   * Resolves with the first log line (already seen or still to come, counting
   * from line `since`) whose msg equals `msg` and that matches `fields`;
   * rejects if the process exits first.
   */
  waitFor(msg: string, fields?: Record<string, unknown>, since?: number): Promise<LogLine>;
  /** Resolves once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `kernex-agent` with the given environment on top of ours (JSON logs at debug level). */
export function spawnAgent(env: Record<string, string>, args: string[] = []): AgentProcess {
  const proc = spawn(process.execPath, [AGENT_BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'debug', KERNEX_TEST_HOOKS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  const exited = once(proc, 'close').then(([code, signal]) => ({ code, signal })) as AgentProcess['exited'];
  const agent: AgentProcess = {
    proc,
    logs,
    stderr: '',
    exited,
    waitFor(msg, fields = {}, since = 0) {
      const matches = (l: LogLine): boolean => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v);
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hit = logs.slice(since).find(matches);
          if (hit) {
            waiters.delete(checkAndResolve);
            resolve(hit);
          }
          return Boolean(hit);
        };
        const checkAndResolve = (): void => void check();
        if (check()) return;
        waiters.add(checkAndResolve);
        void exited.then(({ code, signal }) => {
          if (waiters.delete(checkAndResolve)) reject(new Error(`kernex-agent exited (${code ?? signal}) before logging '${msg}': ${agent.stderr}`));
        });
      });
    },
    async kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (agent.stderr += chunk));
  readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      return;
    }
    for (const w of [...waiters]) w();
  });
  return agent;
}
