import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EnvReader, type DeviceKeyType } from '@kernex/shared';
import { AgentConfigError } from './errors.js';

/** The agent's configuration, read once from flags and the environment (DESIGN §7). */
export interface AgentConfig {
  /** The server's HTTP base URL, e.g. `https://kernex.example.com`. */
  server: string;
  /** Enrollment token for the first registration; without one the device waits as `pending`. */
  enrollToken: string | undefined;
  /** Key, identity, bundles and pending reports live here (0700). */
  stateDir: string;
  /** Seconds between telemetry messages. */
  telemetryS: number;
  /** MQTT keepalive in seconds: the idle link costs one PINGREQ/PINGRESP pair per period. */
  keepaliveS: number;
  /** Largest wait between reconnect attempts (the cap of the full-jitter backoff). */
  reconnectMaxS: number;
  /** PEM file of the CA that signed the broker's certificate, for mqtts:// (pinned: the system CAs are not used). */
  caFile: string | undefined;
  /** Key made on first start: `rsa` (RSA-4096, the default) or `p256`. */
  keyType: DeviceKeyType;
  /**
   * Connect here instead of the URLs the server hands out (a device behind a relay, or tests):
   * one URL or a comma-separated list, tried in turn on failure as the server's list is.
   */
  mqttUrl: string | undefined;
  /** Optional device name sent at registration (default: the host name). */
  name: string;
  logLevel: string;
  /** Test hooks (SIGUSR2 emits a self-test event); off unless KERNEX_TEST_HOOKS=1. */
  testHooks: boolean;
}

/** Defaults chosen for the idle-cost budget (< 4 KB per device-hour, see README). */
export const DEFAULT_TELEMETRY_S = 900;
export const DEFAULT_KEEPALIVE_S = 300;
export const DEFAULT_RECONNECT_MAX_S = 60;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Flag name → environment variable; a flag wins over its variable. */
const OPTIONS = {
  server: 'KERNEX_SERVER',
  'enroll-token': 'KERNEX_ENROLL_TOKEN',
  'state-dir': 'KERNEX_STATE_DIR',
  'telemetry-s': 'KERNEX_TELEMETRY_S',
  'keepalive-s': 'KERNEX_KEEPALIVE_S',
  'reconnect-max-s': 'KERNEX_RECONNECT_MAX_S',
  'ca-file': 'KERNEX_CA_FILE',
  'key-type': 'KERNEX_KEY_TYPE',
  'mqtt-url': 'KERNEX_MQTT_URL',
  name: 'KERNEX_DEVICE_NAME',
  'log-level': 'LOG_LEVEL',
} as const;
type Flag = keyof typeof OPTIONS;

export const USAGE = `usage: kernex-agent [options]
${Object.entries(OPTIONS)
  .map(([flag, env]) => `  --${flag.padEnd(16)} (${env})`)
  .join('\n')}
  --help`;

function defaultStateDir(env: Env): string {
  if (process.getuid?.() === 0) return '/var/lib/kernex-agent';
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'kernex-agent');
}

type Env = Record<string, string | undefined>;

/**
 * Reads flags (`--server URL --state-dir DIR ...`) and `KERNEX_*` variables,
 * validates them all and returns a frozen object, or throws every problem at
 * once in an {@link AgentConfigError}. `{ help: true }` when `--help` was given.
 */
export function loadAgentConfig(argv: string[] = process.argv.slice(2), env: Env = process.env): Readonly<AgentConfig> | { help: true } {
  let values: Partial<Record<Flag | 'help', string | boolean>>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...Object.fromEntries(Object.keys(OPTIONS).map((k) => [k, { type: 'string' as const }])),
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new AgentConfigError([(err as Error).message]);
  }
  if (values.help) return { help: true };

  const read = new EnvReader<Flag>(
    (flag) => (values[flag] as string | undefined) ?? env[OPTIONS[flag]],
    (flag) => `${OPTIONS[flag]} (--${flag})`,
  );
  const problems = read.problems;
  const seconds = (flag: Flag, fallback: number, min: number, max: number): number => read.int(flag, fallback, { min, max, unit: 'seconds' });
  const url = (flag: Flag, protocols: string[]): string | undefined => read.url(flag, protocols)?.replace(/\/+$/, '');

  // One URL or a comma-separated list, kept as one string in its order (see AgentConfig.mqttUrl).
  const urlList = (flag: Flag, protocols: string[]): string | undefined => {
    const list = read.list(flag);
    if (list.length === 0) return undefined;
    const label = `${OPTIONS[flag]} (--${flag})`;
    for (const u of list) {
      try {
        if (!protocols.includes(new URL(u).protocol)) problems.push(`${label} must be ${protocols.join(' or ')} URLs, got '${u}'`);
      } catch {
        problems.push(`${label} is not a valid URL: '${u}'`);
      }
    }
    return list.map((u) => u.replace(/\/+$/, '')).join(',');
  };

  const server = url('server', ['http:', 'https:']);
  if (server === undefined && !problems.length) problems.push(`${OPTIONS.server} (--server) is required: the server's HTTP base URL`);
  const keyType = read.oneOf<DeviceKeyType>('key-type', ['rsa', 'p256'], 'rsa');
  const logLevel = read.oneOf('log-level', LOG_LEVELS, 'info');
  const caFile = read.string('ca-file');

  const config: AgentConfig = {
    server: server ?? '',
    enrollToken: read.string('enroll-token'),
    stateDir: path.resolve(read.string('state-dir') ?? defaultStateDir(env)),
    telemetryS: seconds('telemetry-s', DEFAULT_TELEMETRY_S, 1, 86_400),
    keepaliveS: seconds('keepalive-s', DEFAULT_KEEPALIVE_S, 10, 3600),
    reconnectMaxS: seconds('reconnect-max-s', DEFAULT_RECONNECT_MAX_S, 1, 3600),
    caFile: caFile === undefined ? undefined : path.resolve(caFile),
    keyType,
    mqttUrl: urlList('mqtt-url', ['mqtt:', 'mqtts:', 'ws:', 'wss:']),
    name: read.string('name') ?? os.hostname(),
    logLevel,
    testHooks: env.KERNEX_TEST_HOOKS === '1',
  };
  if (problems.length > 0) throw new AgentConfigError(problems);
  return Object.freeze(config);
}

/** What the simulator reads from the environment (the variables every kernex command reads, DESIGN §7). */
export interface SimEnvironment {
  KERNEX_URL?: string;
  KERNEX_API_KEY?: string;
  KERNEX_ENROLL_TOKEN?: string;
  /** CA certificate(s) the simulated devices trust for https:// and mqtts:// (as the agent's). */
  KERNEX_CA_FILE?: string;
  /** Base of the default key cache (`$XDG_CACHE_HOME/kernex/sim-keys`). */
  XDG_CACHE_HOME?: string;
}

/** The simulator's environment, read once here so its argument parser takes it as a value. */
export function loadSimEnvironment(env: Env = process.env): Readonly<SimEnvironment> {
  const { KERNEX_URL, KERNEX_API_KEY, KERNEX_ENROLL_TOKEN, KERNEX_CA_FILE, XDG_CACHE_HOME } = env;
  return Object.freeze({ KERNEX_URL, KERNEX_API_KEY, KERNEX_ENROLL_TOKEN, KERNEX_CA_FILE, XDG_CACHE_HOME });
}
