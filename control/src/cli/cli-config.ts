import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError } from './cli-error.js';

/** Where the CLI finds the server and its key. */
export interface CliConfig {
  url: string;
  apiKey: string | undefined;
  /** The config file read (or that would be read), for messages. */
  file: string;
}

/** Global options every command accepts. */
export interface GlobalOptions {
  url?: string;
  apiKey?: string;
  json?: boolean;
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** `$KERNEX_CONFIG`, else `$XDG_CONFIG_HOME/kernex/config.json`, else `~/.config/kernex/config.json`. */
export function configFilePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KERNEX_CONFIG) return path.resolve(env.KERNEX_CONFIG);
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'kernex', 'config.json');
}

function readConfigFile(file: string): { url?: string; apiKey?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    const { url, apiKey } = parsed as Record<string, unknown>;
    if (url !== undefined && typeof url !== 'string') throw new Error('"url" must be a string');
    if (apiKey !== undefined && typeof apiKey !== 'string') throw new Error('"apiKey" must be a string');
    return { url, apiKey };
  } catch (err) {
    throw new CliError(`${file} is not valid: ${(err as Error).message}`);
  }
}

/**
 * Flags win over the environment (`KERNEX_URL`, `KERNEX_API_KEY`), which wins
 * over the config file; the URL defaults to a server on this machine.
 */
export function loadCliConfig(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): CliConfig {
  const file = configFilePath(env);
  const fromFile = readConfigFile(file);
  const url = opts.url || env.KERNEX_URL || fromFile.url || DEFAULT_URL;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new CliError(`the server URL '${url}' is not an http(s) URL`);
  }
  return { url: url.replace(/\/+$/, ''), apiKey: opts.apiKey || env.KERNEX_API_KEY || fromFile.apiKey || undefined, file };
}
