import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

/** How a script ended. */
export interface ScriptResult {
  ok: boolean;
  /** One line for the event's `error` when not ok. */
  error?: string;
}

const TAIL_BYTES = 1024;
/** After SIGTERM, how long the group gets before SIGKILL. */
const GRACE_MS = 2000;

/**
 * Runs a bundle script with `cwd` as its working directory and its own
 * process group, so a timeout kills everything it started (SIGTERM, then
 * SIGKILL after a grace period). Never throws: a failure is a result.
 */
export async function runScript(opts: {
  script: string;
  cwd: string;
  timeoutS: number;
  env?: Record<string, string>;
  label: string;
  /** Aborting kills the script's process group, as a timeout does. */
  signal?: AbortSignal;
}): Promise<ScriptResult> {
  const file = path.resolve(opts.cwd, opts.script);
  try {
    await fs.chmod(file, 0o755);
  } catch (err) {
    return { ok: false, error: `${opts.label} script '${opts.script}' cannot be run: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  return new Promise((resolve) => {
    let tail = '';
    const keep = (chunk: Buffer): void => {
      tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
    };
    const child = spawn(file, [], {
      cwd: opts.cwd,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
    });
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    let killer: NodeJS.Timeout | undefined;
    const killGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid) process.kill(-child.pid, signal);
      } catch {
        // The group is gone already.
      }
    };
    const stop = (): void => {
      killGroup('SIGTERM');
      killer ??= setTimeout(() => killGroup('SIGKILL'), GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutS * 1000);
    // An abort during the chmod above fires no event: stop at once.
    if (opts.signal?.aborted) stop();
    else opts.signal?.addEventListener('abort', stop, { once: true });
    const last = (): string => {
      const t = tail.trim().split('\n').slice(-3).join(' | ');
      return t ? `: ${t}` : '';
    };
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, error: `${opts.label} script '${opts.script}' could not start: ${err.message}` });
    });
    // 'exit', not 'close': a daemon the script started may hold its stdout open.
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', stop);
      child.stdout.destroy();
      child.stderr.destroy();
      // On a timeout the SIGKILL timer stays armed for what ignored SIGTERM.
      if (killer) killer.unref();
      if (opts.signal?.aborted) resolve({ ok: false, error: `${opts.label} script '${opts.script}' stopped: cancelled` });
      else if (timedOut) resolve({ ok: false, error: `${opts.label} script '${opts.script}' timed out after ${opts.timeoutS} s` });
      else if (code === 0) resolve({ ok: true });
      else resolve({ ok: false, error: `${opts.label} script '${opts.script}' ${code !== null ? `exited with ${code}` : `was killed by ${signal}`}${last()}` });
    });
  });
}
