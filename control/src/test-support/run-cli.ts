import { execFile } from 'node:child_process';
import { KERNEX_BIN } from './spawn-server.js';

/** What one `kernex` command did. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built `kernex` CLI as a user would, with only the given KERNEX_*
 * variables and DATABASE_URL (none inherited, so a developer's own config cannot leak in).
 */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  // DATABASE_URL only when the test passes one, as for spawnServer: CI sets it for the external-database test.
  const { KERNEX_URL: _u, KERNEX_API_KEY: _k, KERNEX_CONFIG: _c, DATABASE_URL: _d, ...inherited } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [KERNEX_BIN, ...args], { env: { ...inherited, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
