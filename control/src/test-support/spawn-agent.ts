import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** The `kernex-agent` command as an install links it (runs the built dist/). */
export const AGENT_BIN = fileURLToPath(new URL('../../../agent/bin/kernex-agent.js', import.meta.url));

/**
 * A running `kernex-agent` child process. Tests observe what it does through the
 * server's API, metrics and its state directory, never through its log wording.
 */
export interface AgentProcess {
  proc: ChildProcess;
  /** What it wrote to stderr (for failure messages). */
  stderr: string;
  /** Resolves once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `kernex-agent` with the given environment on top of ours (test hooks on: SIGUSR2 queues a self-test event). */
export function spawnAgent(env: Record<string, string>, args: string[] = []): AgentProcess {
  const proc = spawn(process.execPath, [AGENT_BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', KERNEX_TEST_HOOKS: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = once(proc, 'close').then(([code, signal]) => ({ code, signal })) as AgentProcess['exited'];
  const agent: AgentProcess = {
    proc,
    stderr: '',
    exited,
    async kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (agent.stderr += chunk));
  return agent;
}
