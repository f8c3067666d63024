import { parseArgs } from 'node:util';
import type { SimEnvironment } from '../config.js';
import { defaultKeyCacheDir } from './key-pool.js';
import { DEFAULTS, type SimulationOptions, type SimulationStats } from './simulation.js';

/** Where the simulator looks for a server when nothing names one (as the other kernex commands do). */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

export const SIM_USAGE = `Usage: kernex sim --devices N [options]   (also: kernex-sim ...)

N simulated devices in one process, each a real device model (key, registration,
JWT-authenticated MQTT session, telemetry, deploy/cancel/rollback handling).
It reads the settings every kernex command reads: KERNEX_URL and KERNEX_API_KEY
(kernex sim also reads the config file, like the other commands). With an admin
key it makes an enrollment token for its N devices and tags them.

  --devices N             number of devices (required)
  --url URL               server HTTP base URL (KERNEX_URL; default ${DEFAULT_URL})
  --api-key K             admin API key (KERNEX_API_KEY): make a token for N devices
  --tag T                 tag of the devices of that token (repeatable; default ${DEFAULTS.tags.join(',')})
  --enroll-token T        register with this enrollment token instead (KERNEX_ENROLL_TOKEN)
  --ca-file F             CA certificate(s) to trust for https:// and mqtts:// (KERNEX_CA_FILE),
                          e.g. the server's own CA (KERNEX_DATA_DIR/tls/ca.crt)
  --key-type p256|rsa     device key type (default p256; rsa = RSA-4096, slow to make)
  --key-cache DIR         key pool cache (default ~/.cache/kernex/sim-keys)
  --workers N             worker threads (default: number of cores)
  --connect-rate R        devices started per second (default ${DEFAULTS.connectRate})
  --telemetry-s S         telemetry interval (default ${DEFAULTS.telemetryS})
  --keepalive-s S         MQTT keepalive (default ${DEFAULTS.keepaliveS})
  --mqtt-url URL          broker URL instead of the ones registration hands out
  --download-sample F     share of devices that really download bundles (0..1, default 1)
  --fail-rate F           share of installs that fail (0..1, default 0)
  --install-ms MS         simulated install time (default ${DEFAULTS.installMs})
  --soak-fail-rate F      share of soaks (deployments with soakS) whose health check fails (0..1, default 0)
  --flap-mean-s S         cut each device's link at random, mean S seconds (default off)
  --duration-s S          stop after S seconds (default: run until SIGINT/SIGTERM)
  --summary-s S           progress line on stderr every S seconds (default 5; 0 = none)
  --json                  print the final summary as JSON
  --log-level L           devices' own log level on stderr (default warn)
  -h, --help`;

/** Parses `kernex sim` / `kernex-sim` arguments; throws with a message naming the bad flag. */
export function parseSimArgs(argv: string[], env: SimEnvironment): (SimulationOptions & { durationS?: number; summaryS: number; json: boolean }) | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      url: { type: 'string' },
      devices: { type: 'string' },
      'api-key': { type: 'string' },
      tag: { type: 'string', multiple: true },
      'enroll-token': { type: 'string' },
      'ca-file': { type: 'string' },
      // Earlier names of --url and --api-key, still accepted so old scripts keep working.
      server: { type: 'string' },
      'admin-key': { type: 'string' },
      'key-type': { type: 'string' },
      'key-cache': { type: 'string' },
      workers: { type: 'string' },
      'connect-rate': { type: 'string' },
      'telemetry-s': { type: 'string' },
      'keepalive-s': { type: 'string' },
      'mqtt-url': { type: 'string' },
      'download-sample': { type: 'string' },
      'fail-rate': { type: 'string' },
      'install-ms': { type: 'string' },
      'soak-fail-rate': { type: 'string' },
      'flap-mean-s': { type: 'string' },
      'duration-s': { type: 'string' },
      'summary-s': { type: 'string' },
      json: { type: 'boolean' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const num = (flag: keyof typeof values, min: number, max = Infinity, integer = false): number | undefined => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new Error(`--${flag} must be ${integer ? 'an integer' : 'a number'} between ${min} and ${max}, not '${String(raw)}'`);
    }
    return n;
  };
  const devices = num('devices', 1, 1_000_000, true);
  if (devices === undefined) throw new Error('--devices N is required');
  const keyType = values['key-type'];
  if (keyType !== undefined && keyType !== 'p256' && keyType !== 'rsa') throw new Error(`--key-type must be p256 or rsa, not '${keyType}'`);
  const enrollToken = values['enroll-token'] ?? (env.KERNEX_ENROLL_TOKEN || undefined);
  const apiKey = values['api-key'] ?? values['admin-key'] ?? (env.KERNEX_API_KEY || undefined);
  const tags = values.tag;
  const parsed: SimulationOptions & { durationS?: number; summaryS: number; json: boolean } = {
    server: values.url ?? values.server ?? (env.KERNEX_URL || DEFAULT_URL),
    devices,
    enrollToken,
    adminKey: enrollToken ? undefined : apiKey,
    tags,
    keyType,
    keyCache: values['key-cache'] ?? defaultKeyCacheDir(env.XDG_CACHE_HOME),
    caFile: values['ca-file'] ?? (env.KERNEX_CA_FILE || undefined),
    workers: num('workers', 1, 256, true),
    connectRate: num('connect-rate', 0.001),
    telemetryS: num('telemetry-s', 1),
    keepaliveS: num('keepalive-s', 5, 65535, true),
    mqttUrl: values['mqtt-url'],
    downloadSample: num('download-sample', 0, 1),
    failRate: num('fail-rate', 0, 1),
    installMs: num('install-ms', 0),
    soakFailRate: num('soak-fail-rate', 0, 1),
    flapMeanS: num('flap-mean-s', 0),
    durationS: num('duration-s', 0),
    summaryS: num('summary-s', 0) ?? 5,
    json: values.json === true,
    logLevel: values['log-level'],
  };
  // DESIGN §7. Without either, every device would register as pending and wait for an
  // operator (and tokenless registrations are rate limited per address): say so instead.
  if (!enrollToken && !apiKey) {
    throw new Error('no API key and no enrollment token: set KERNEX_API_KEY (an admin key), or pass --api-key or --enroll-token');
  }
  if (tags && enrollToken) throw new Error("--tag applies to the token kernex sim makes with an API key; devices registering with --enroll-token get that token's tags");
  return parsed;
}

/** The one-line progress summary. */
export function summaryLine(s: SimulationStats): string {
  const ex = Object.entries(s.executions).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  return `[${s.elapsedS.toFixed(0)}s] connected ${s.connected}/${s.devices} (started ${s.started}) commands ${s.commands} telemetry ${s.telemetry} flaps ${s.flaps} executions: ${ex}`;
}
