import { parseArgs } from 'node:util';
import { DEFAULTS, type SimulationOptions, type SimulationStats } from './simulation.js';

export const SIM_USAGE = `Usage: kernex-agent sim --devices N [options]   (also: kernex sim ...)

N simulated devices in one process, each a real device model (key, registration,
JWT-authenticated MQTT session, telemetry, deploy/cancel/rollback handling).

  --server URL            server HTTP base URL (KERNEX_SERVER; default http://127.0.0.1:8080)
  --devices N             number of devices (required)
  --enroll-token T        enrollment token (KERNEX_ENROLL_TOKEN)
  --admin-key K           admin API key: create a token for N devices (KERNEX_ADMIN_KEY)
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
  --flap-mean-s S         cut each device's link at random, mean S seconds (default off)
  --duration-s S          stop after S seconds (default: run until SIGINT/SIGTERM)
  --summary-s S           progress line on stderr every S seconds (default 5; 0 = none)
  --json                  print the final summary as JSON
  --log-level L           devices' own log level on stderr (default warn)
  -h, --help`;

/** Parses `kernex-agent sim` arguments; throws with a message naming the bad flag. */
export function parseSimArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): (SimulationOptions & { durationS?: number; summaryS: number; json: boolean }) | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      server: { type: 'string' },
      devices: { type: 'string' },
      'enroll-token': { type: 'string' },
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
  return {
    server: values.server ?? env.KERNEX_SERVER ?? 'http://127.0.0.1:8080',
    devices,
    enrollToken: values['enroll-token'] ?? env.KERNEX_ENROLL_TOKEN,
    adminKey: values['admin-key'] ?? env.KERNEX_ADMIN_KEY,
    keyType,
    keyCache: values['key-cache'],
    workers: num('workers', 1, 256, true),
    connectRate: num('connect-rate', 0.001),
    telemetryS: num('telemetry-s', 1),
    keepaliveS: num('keepalive-s', 5, 65535, true),
    mqttUrl: values['mqtt-url'],
    downloadSample: num('download-sample', 0, 1),
    failRate: num('fail-rate', 0, 1),
    installMs: num('install-ms', 0),
    flapMeanS: num('flap-mean-s', 0),
    durationS: num('duration-s', 0),
    summaryS: num('summary-s', 0) ?? 5,
    json: values.json === true,
    logLevel: values['log-level'],
  };
}

/** The one-line progress summary. */
export function summaryLine(s: SimulationStats): string {
  const ex = Object.entries(s.executions).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  return `[${s.elapsedS.toFixed(0)}s] connected ${s.connected}/${s.devices} (started ${s.started}) commands ${s.commands} telemetry ${s.telemetry} flaps ${s.flaps} executions: ${ex}`;
}
