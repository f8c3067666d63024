import os from 'node:os';
import path from 'node:path';
import { DEFAULT_ARCHIVE_LIMITS, EnvReader, type ArchiveLimits } from '@kernex/shared';
import { MAX_UNAUTHENTICATED_PER_ADDRESS } from '@kernex/broker';

const MIB = (bytes: number): number => Math.floor(bytes / (1024 * 1024));

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
  /** Connections in the server's PostgreSQL pool (KERNEX_PG_POOL_SIZE). */
  pgPoolSize: number;
  /** Port of the embedded PostgreSQL; 0 picks a free one at each start. */
  embeddedPgPort: number;
  publicUrl: string | undefined;
  /**
   * The `mqtt` URLs devices are told at registration (KERNEX_MQTT_URLS, comma-separated), for a
   * cluster's nodes or a load balancer in front of them; empty: this node's own listeners.
   */
  mqttUrls: string[];
  /** Redis of a cluster (KERNEX_REDIS_URL, DESIGN §8); absent: a single node, nothing else starts. */
  redisUrl: string | undefined;
  /** This node's id in a cluster (KERNEX_NODE_ID); absent: host:port of its HTTP listener. */
  nodeId: string | undefined;
  /**
   * Where TLS material comes from: `files` (KERNEX_TLS_CERT/KERNEX_TLS_KEY),
   * `auto` (a CA and server certificate the server makes in its data
   * directory, when a TLS listener is asked for without files), or `off`.
   */
  tls: { mode: 'off' } | { mode: 'auto' } | { mode: 'files'; certFile: string; keyFile: string };
  /** Serve the HTTP API over TLS (KERNEX_HTTPS). */
  https: boolean;
  adminKey: string | undefined;
  /** Days of telemetry history kept; older samples are pruned in the background. */
  telemetryRetentionDays: number;
  /** Where bundle blobs live (DESIGN §7: KERNEX_BUNDLE_STORE, KERNEX_BUNDLE_DIR, KERNEX_S3_*). */
  bundleStore: BundleStoreConfig;
  /** Versions kept per bundle name beyond those in use (KERNEX_BUNDLE_KEEP, DESIGN §4). */
  bundleKeep: number;
  /** Days an ended deployment and its executions are kept after their last change (KERNEX_EXECUTION_RETENTION_DAYS). */
  executionRetentionDays: number;
  /** Days of audit log kept (KERNEX_AUDIT_RETENTION_DAYS). */
  auditRetentionDays: number;
  logLevel: string;
  /** KERNEX_LOG_FORMAT: `auto` (pino-pretty on a terminal, JSON lines otherwise) or `json` (JSON lines always). */
  logFormat: 'auto' | 'json';
  /** Largest bundle upload, bytes (KERNEX_MAX_BUNDLE_MB). */
  maxBundleBytes: number;
  /**
   * MQTT connections one address may have open before their CONNACK
   * (KERNEX_MQTT_PENDING_PER_ADDRESS). Behind a load balancer every device
   * comes from its address, so a fleet reconnecting at once needs more.
   */
  mqttPendingPerAddress: number;
  /**
   * Bounds of an unpacked bundle (KERNEX_MAX_BUNDLE_ENTRY_MB, KERNEX_MAX_BUNDLE_UNPACKED_MB):
   * at most the agent's own, so the server never accepts what devices refuse.
   */
  archiveLimits: ArchiveLimits;
  /** Period of the orchestrator's tick loop, ms (KERNEX_ORCHESTRATOR_TICK_MS). */
  orchestratorTickMs: number;
  /** Requests per minute for one API key, or for one address sending no credentials. */
  rateLimitPerMin: number;
  /** Requests per minute from one address to the unauthenticated `POST /api/v1/devices/register`. */
  registerRateLimitPerMin: number;
  /** Largest JSON request body in bytes (routes that take uploads set their own). */
  bodyLimitBytes: number;
  /** A request's headers must all arrive within this (KERNEX_HTTP_HEADERS_TIMEOUT_MS). */
  headersTimeoutMs: number;
  /** A JSON body must all arrive within this once its headers have (KERNEX_HTTP_BODY_TIMEOUT_MS); bundle uploads are exempt. */
  bodyTimeoutMs: number;
  /** A connection that sends and receives nothing for this long is closed (KERNEX_HTTP_IDLE_TIMEOUT_MS). */
  idleTimeoutMs: number;
  /** Origins allowed to call the API from a browser; empty = CORS off, `['*']` = any. */
  corsOrigins: string[];
}

/** The file store (a directory) or an S3-compatible bucket. */
export type BundleStoreConfig =
  | { kind: 'file'; dir: string }
  | {
      kind: 's3';
      endpoint: string | undefined;
      bucket: string;
      region: string;
      forcePathStyle: boolean;
      /** AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) when set; otherwise the SDK's own chain. Never logged. */
      credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
    };

/** One bad value, named by its variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** `auto`: pino-pretty on a terminal, JSON lines otherwise; `json`: JSON lines always. */
const LOG_FORMATS = ['auto', 'json'] as const;

type Env = Record<string, string | undefined>;

/** Default data directory: root cannot use $HOME, because the embedded PostgreSQL runs as another user. */
function defaultDataDir(env: Env): string {
  if (process.getuid?.() === 0) return '/var/lib/kernex';
  const base = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'kernex');
}

/**
 * Reads and validates the `KERNEX_*` variables. Collects every problem, each as
 * one line naming the variable, and throws them together in a {@link ConfigError}.
 */
export function loadConfig(env: Env = process.env): Readonly<ServerConfig> {
  const read = new EnvReader((name) => env[name]);
  const problems = read.problems;
  const positiveInt = (name: string, fallback: number, max?: number): number => read.int(name, fallback, { min: 1, max });

  const origins = (name: string): string[] => {
    const list = read.list(name);
    for (const o of list) {
      if (o === '*') continue;
      try {
        const u = new URL(o);
        if (!['http:', 'https:'].includes(u.protocol) || u.origin !== o.replace(/\/$/, '')) throw new Error('not an origin');
      } catch {
        problems.push(`${name} must be '*' or comma-separated origins like https://console.example.com, got '${o}'`);
      }
    }
    return list.map((o) => o.replace(/\/$/, ''));
  };
  const urlList = (name: string, protocols: string[]): string[] => {
    const list = read.list(name);
    for (const u of list) {
      try {
        if (!protocols.includes(new URL(u).protocol)) throw new Error('scheme');
      } catch {
        problems.push(`${name} must be comma-separated ${protocols.map((p) => p.replace(':', '://')).join(', ')} URLs, got '${u}'`);
      }
    }
    return list;
  };
  const nodeId = read.string('KERNEX_NODE_ID');
  if (nodeId !== undefined && !/^[\x21-\x7e]{1,128}$/.test(nodeId)) problems.push(`KERNEX_NODE_ID must be 1 to 128 printable ASCII characters without spaces, got '${nodeId}'`);

  const certFile = read.string('KERNEX_TLS_CERT');
  const keyFile = read.string('KERNEX_TLS_KEY');
  if (Boolean(certFile) !== Boolean(keyFile)) problems.push('KERNEX_TLS_CERT and KERNEX_TLS_KEY must be given together');
  const mqttsPort = read.port('KERNEX_MQTTS_PORT', undefined);
  const https = read.bool('KERNEX_HTTPS', Boolean(certFile && keyFile));
  const tls: ServerConfig['tls'] =
    certFile && keyFile
      ? { mode: 'files', certFile: path.resolve(certFile), keyFile: path.resolve(keyFile) }
      : mqttsPort !== undefined || https
        ? { mode: 'auto' }
        : { mode: 'off' };

  const dataDir = path.resolve(read.string('KERNEX_DATA_DIR') ?? defaultDataDir(env));
  const storeKind = read.string('KERNEX_BUNDLE_STORE') ?? 'file';
  let bundleStore: BundleStoreConfig = { kind: 'file', dir: path.resolve(env.KERNEX_BUNDLE_DIR || path.join(dataDir, 'bundles')) };
  if (storeKind === 's3') {
    const bucket = read.string('KERNEX_S3_BUCKET') ?? '';
    if (!bucket) problems.push('KERNEX_S3_BUCKET must be set when KERNEX_BUNDLE_STORE is s3');
    const endpoint = read.url('KERNEX_S3_ENDPOINT', ['http:', 'https:']);
    bundleStore = {
      kind: 's3',
      endpoint,
      bucket,
      region: read.string('KERNEX_S3_REGION') ?? read.string('AWS_REGION') ?? 'us-east-1',
      // S3-compatible servers (MinIO, s3rver) want path-style URLs; AWS itself, virtual hosts.
      forcePathStyle: read.bool('KERNEX_S3_FORCE_PATH_STYLE', endpoint !== undefined),
      credentials:
        env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
          ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) }
          : undefined,
    };
  } else if (storeKind !== 'file') {
    problems.push(`KERNEX_BUNDLE_STORE must be file or s3, got '${storeKind}'`);
  }

  const config: ServerConfig = {
    databaseUrl: read.url('DATABASE_URL', ['postgres:', 'postgresql:']),
    dataDir,
    host: read.string('KERNEX_HOST') ?? '0.0.0.0',
    httpPort: read.port('KERNEX_HTTP_PORT', 8080),
    mqttPort: read.port('KERNEX_MQTT_PORT', 1883),
    mqttsPort,
    wsPort: read.port('KERNEX_WS_PORT', undefined),
    embeddedPgPort: read.port('KERNEX_PG_PORT', 0),
    pgPoolSize: positiveInt('KERNEX_PG_POOL_SIZE', 10, 1000),
    mqttPendingPerAddress: positiveInt('KERNEX_MQTT_PENDING_PER_ADDRESS', MAX_UNAUTHENTICATED_PER_ADDRESS, 1_000_000),
    publicUrl: read.url('KERNEX_PUBLIC_URL', ['http:', 'https:']),
    mqttUrls: urlList('KERNEX_MQTT_URLS', ['mqtt:', 'mqtts:', 'ws:', 'wss:']),
    redisUrl: read.url('KERNEX_REDIS_URL', ['redis:', 'rediss:']),
    nodeId,
    tls,
    https,
    adminKey: read.string('KERNEX_ADMIN_KEY'),
    telemetryRetentionDays: positiveInt('KERNEX_TELEMETRY_RETENTION_DAYS', 7, 3650),
    bundleStore,
    bundleKeep: positiveInt('KERNEX_BUNDLE_KEEP', 10, 100_000),
    executionRetentionDays: positiveInt('KERNEX_EXECUTION_RETENTION_DAYS', 90, 36_500),
    auditRetentionDays: positiveInt('KERNEX_AUDIT_RETENTION_DAYS', 365, 36_500),
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    logFormat: read.oneOf('KERNEX_LOG_FORMAT', LOG_FORMATS, 'auto'),
    maxBundleBytes: positiveInt('KERNEX_MAX_BUNDLE_MB', 512) * 1024 * 1024,
    archiveLimits: {
      ...DEFAULT_ARCHIVE_LIMITS,
      maxEntryBytes: positiveInt('KERNEX_MAX_BUNDLE_ENTRY_MB', MIB(DEFAULT_ARCHIVE_LIMITS.maxEntryBytes), MIB(DEFAULT_ARCHIVE_LIMITS.maxEntryBytes)) * 1024 * 1024,
      maxTotalBytes:
        positiveInt('KERNEX_MAX_BUNDLE_UNPACKED_MB', MIB(DEFAULT_ARCHIVE_LIMITS.maxTotalBytes), MIB(DEFAULT_ARCHIVE_LIMITS.maxTotalBytes)) * 1024 * 1024,
    },
    orchestratorTickMs: positiveInt('KERNEX_ORCHESTRATOR_TICK_MS', 1000),
    rateLimitPerMin: positiveInt('KERNEX_RATE_LIMIT_PER_MIN', 600),
    registerRateLimitPerMin: positiveInt('KERNEX_REGISTER_RATE_LIMIT_PER_MIN', 10),
    bodyLimitBytes: positiveInt('KERNEX_BODY_LIMIT_BYTES', 1024 * 1024),
    headersTimeoutMs: positiveInt('KERNEX_HTTP_HEADERS_TIMEOUT_MS', 10_000),
    bodyTimeoutMs: positiveInt('KERNEX_HTTP_BODY_TIMEOUT_MS', 30_000),
    idleTimeoutMs: positiveInt('KERNEX_HTTP_IDLE_TIMEOUT_MS', 60_000),
    corsOrigins: origins('KERNEX_CORS_ORIGINS'),
  };

  const adminKey = config.adminKey;
  if (adminKey !== undefined && adminKey.length < 16) {
    problems.push('KERNEX_ADMIN_KEY must be at least 16 characters long');
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
