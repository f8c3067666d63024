import os from 'node:os';
import path from 'node:path';

/** The server's configuration, read once from the environment (DESIGN §7). */
export interface ServerConfig {
  /** External PostgreSQL; when absent the server starts an embedded one. */
  databaseUrl: string | undefined;
  dataDir: string;
  host: string;
  httpPort: number;
  mqttPort: number;
  mqttsPort: number | undefined;
  wsPort: number | undefined;
  /** Port of the embedded PostgreSQL; 0 picks a free one at each start. */
  embeddedPgPort: number;
  publicUrl: string | undefined;
  adminKey: string | undefined;
  /** Days of telemetry history kept; older samples are pruned in the background. */
  telemetryRetentionDays: number;
  logLevel: string;
  /** Largest bundle upload, bytes (KERNEX_MAX_BUNDLE_MB). */
  maxBundleBytes: number;
  /** Period of the orchestrator's tick loop, ms (KERNEX_ORCHESTRATOR_TICK_MS). */
  orchestratorTickMs: number;
}

/** One bad value, named by its variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

type Env = Record<string, string | undefined>;

/** Default data directory: root cannot use $HOME, because the embedded PostgreSQL runs as another user. */
function defaultDataDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/kernex';
  const base = process.env.XDG_DATA_HOME ?? path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'kernex');
}

/**
 * Reads and validates the `KERNEX_*` variables. Collects every problem, each as
 * one line naming the variable, and throws them together in a {@link ConfigError}.
 */
export function loadConfig(env: Env = process.env): Readonly<ServerConfig> {
  const problems: string[] = [];

  const port = (name: string, fallback: number | undefined): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(n) || n < 0 || n > 65535) {
      problems.push(`${name} must be a port number between 0 and 65535, got '${raw}'`);
      return fallback;
    }
    return n;
  };

  const positiveInt = (name: string, fallback: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || n < 1 || n > max) {
      problems.push(`${name} must be a whole number from 1 to ${max}, got '${raw}'`);
      return fallback;
    }
    return n;
  };

  const url = (name: string, protocols: string[]): string | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    try {
      const u = new URL(raw);
      if (!protocols.includes(u.protocol)) {
        problems.push(`${name} must be a ${protocols.join(' or ')} URL, got '${u.protocol}'`);
      }
    } catch {
      problems.push(`${name} is not a valid URL`);
    }
    return raw;
  };

  const positive = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < 1) {
      problems.push(`${name} must be a whole number of at least 1, got '${raw}'`);
      return fallback;
    }
    return n;
  };

  const config: ServerConfig = {
    databaseUrl: url('DATABASE_URL', ['postgres:', 'postgresql:']),
    dataDir: path.resolve(env.KERNEX_DATA_DIR || defaultDataDir()),
    host: env.KERNEX_HOST || '0.0.0.0',
    httpPort: port('KERNEX_HTTP_PORT', 8080)!,
    mqttPort: port('KERNEX_MQTT_PORT', 1883)!,
    mqttsPort: port('KERNEX_MQTTS_PORT', undefined),
    wsPort: port('KERNEX_WS_PORT', undefined),
    embeddedPgPort: port('KERNEX_PG_PORT', 0)!,
    publicUrl: url('KERNEX_PUBLIC_URL', ['http:', 'https:']),
    adminKey: env.KERNEX_ADMIN_KEY || undefined,
    telemetryRetentionDays: positiveInt('KERNEX_TELEMETRY_RETENTION_DAYS', 7, 3650),
    logLevel: env.LOG_LEVEL || 'info',
    maxBundleBytes: positive('KERNEX_MAX_BUNDLE_MB', 512) * 1024 * 1024,
    orchestratorTickMs: positive('KERNEX_ORCHESTRATOR_TICK_MS', 1000),
  };

  const logLevel = config.logLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got '${logLevel}'`);
  }

  const adminKey = config.adminKey;
  if (adminKey !== undefined && adminKey.length < 16) {
    problems.push('KERNEX_ADMIN_KEY must be at least 16 characters long');
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
