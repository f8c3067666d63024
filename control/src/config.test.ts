import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('applies the defaults of DESIGN §7', () => {
    const c = loadConfig({ KERNEX_DATA_DIR: '/tmp/kx' });
    expect(c.httpPort).toBe(8080);
    expect(c.mqttPort).toBe(1883);
    expect(c.databaseUrl).toBeUndefined();
    expect(c.dataDir).toBe('/tmp/kx');
    expect(c.logLevel).toBe('info');
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads the cluster settings: Redis, the node id and the MQTT URL list; none of them by default', () => {
    expect(loadConfig({})).toMatchObject({ redisUrl: undefined, nodeId: undefined, mqttUrls: [] });
    const c = loadConfig({ KERNEX_REDIS_URL: 'redis://r:6379', KERNEX_NODE_ID: 'node-1', KERNEX_MQTT_URLS: 'mqtt://a:1883, mqtts://b:8883' });
    expect(c).toMatchObject({ redisUrl: 'redis://r:6379', nodeId: 'node-1', mqttUrls: ['mqtt://a:1883', 'mqtts://b:8883'] });
    try {
      loadConfig({ KERNEX_REDIS_URL: 'http://r', KERNEX_NODE_ID: 'two words', KERNEX_MQTT_URLS: 'mqtt://a:1883,http://b' });
      expect.unreachable();
    } catch (err) {
      const { problems } = err as ConfigError;
      expect(problems).toHaveLength(3);
      expect(problems.join('\n')).toMatch(/KERNEX_REDIS_URL .*'http:'/);
      expect(problems.join('\n')).toMatch(/KERNEX_NODE_ID .*'two words'/);
      expect(problems.join('\n')).toMatch(/KERNEX_MQTT_URLS .*'http:\/\/b'/);
    }
  });

  it('accepts port 0 as any free port', () => {
    expect(loadConfig({ KERNEX_HTTP_PORT: '0', KERNEX_MQTT_PORT: '0' })).toMatchObject({ httpPort: 0, mqttPort: 0 });
  });

  it('names every bad value in one line each', () => {
    try {
      loadConfig({ KERNEX_HTTP_PORT: 'eighty', KERNEX_MQTT_PORT: '70000', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const { problems } = err as ConfigError;
      expect(problems).toHaveLength(4);
      expect(problems[0]).toMatch(/^DATABASE_URL .*'mysql:'/);
      expect(problems[1]).toMatch(/^KERNEX_HTTP_PORT .*'eighty'/);
      expect(problems[2]).toMatch(/^KERNEX_MQTT_PORT .*'70000'/);
      expect(problems[3]).toMatch(/^LOG_LEVEL /);
    }
  });

  it('reads the bundle size limit in MiB', () => {
    expect(loadConfig({}).maxBundleBytes).toBe(512 * 1024 * 1024);
    expect(loadConfig({ KERNEX_MAX_BUNDLE_MB: '2' }).maxBundleBytes).toBe(2 * 1024 * 1024);
    expect(() => loadConfig({ KERNEX_MAX_BUNDLE_MB: '0' })).toThrow(/KERNEX_MAX_BUNDLE_MB must be a whole number/);
  });

  it('lowers the unpacked-bundle bounds in MiB, never above the bounds of the agent', () => {
    expect(loadConfig({}).archiveLimits).toMatchObject({ maxEntryBytes: 512 * 1024 * 1024, maxTotalBytes: 2048 * 1024 * 1024 });
    expect(loadConfig({ KERNEX_MAX_BUNDLE_ENTRY_MB: '4', KERNEX_MAX_BUNDLE_UNPACKED_MB: '16' }).archiveLimits).toMatchObject({
      maxEntryBytes: 4 * 1024 * 1024,
      maxTotalBytes: 16 * 1024 * 1024,
    });
    expect(() => loadConfig({ KERNEX_MAX_BUNDLE_UNPACKED_MB: '2049' })).toThrow(/KERNEX_MAX_BUNDLE_UNPACKED_MB must be a whole number from 1 to 2048/);
    expect(() => loadConfig({ KERNEX_MAX_BUNDLE_ENTRY_MB: '513' })).toThrow(/KERNEX_MAX_BUNDLE_ENTRY_MB must be a whole number from 1 to 512/);
  });

  it('keeps blobs in KERNEX_DATA_DIR/bundles by default, or in KERNEX_BUNDLE_DIR', () => {
    expect(loadConfig({ KERNEX_DATA_DIR: '/tmp/kx' }).bundleStore).toEqual({ kind: 'file', dir: '/tmp/kx/bundles' });
    expect(loadConfig({ KERNEX_DATA_DIR: '/tmp/kx', KERNEX_BUNDLE_DIR: '/srv/shared/bundles' }).bundleStore).toEqual({ kind: 'file', dir: '/srv/shared/bundles' });
  });

  it('reads the S3 store settings and the SDK credentials, path-style by default with an endpoint', () => {
    const c = loadConfig({
      KERNEX_BUNDLE_STORE: 's3',
      KERNEX_S3_BUCKET: 'fleet',
      KERNEX_S3_ENDPOINT: 'http://127.0.0.1:9000',
      AWS_ACCESS_KEY_ID: 'id',
      AWS_SECRET_ACCESS_KEY: 'secret',
    });
    expect(c.bundleStore).toEqual({
      kind: 's3',
      bucket: 'fleet',
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'id', secretAccessKey: 'secret' },
    });
    expect(loadConfig({ KERNEX_BUNDLE_STORE: 's3', KERNEX_S3_BUCKET: 'b', KERNEX_S3_REGION: 'eu-west-1' }).bundleStore).toMatchObject({
      endpoint: undefined,
      region: 'eu-west-1',
      forcePathStyle: false,
      credentials: undefined,
    });
    expect(() => loadConfig({ KERNEX_BUNDLE_STORE: 's3' })).toThrow(/KERNEX_S3_BUCKET must be set/);
    expect(() => loadConfig({ KERNEX_BUNDLE_STORE: 'ftp' })).toThrow(/KERNEX_BUNDLE_STORE must be file or s3/);
    expect(() => loadConfig({ KERNEX_BUNDLE_STORE: 's3', KERNEX_S3_BUCKET: 'b', KERNEX_S3_FORCE_PATH_STYLE: 'maybe' })).toThrow(/KERNEX_S3_FORCE_PATH_STYLE/);
  });

  it('keeps 10 versions per bundle name, 90 days of ended deployments and 365 of audit by default', () => {
    expect(loadConfig({})).toMatchObject({ bundleKeep: 10, executionRetentionDays: 90, auditRetentionDays: 365 });
    expect(loadConfig({ KERNEX_BUNDLE_KEEP: '2', KERNEX_EXECUTION_RETENTION_DAYS: '7', KERNEX_AUDIT_RETENTION_DAYS: '30' })).toMatchObject({
      bundleKeep: 2,
      executionRetentionDays: 7,
      auditRetentionDays: 30,
    });
    expect(() => loadConfig({ KERNEX_BUNDLE_KEEP: '0' })).toThrow(/KERNEX_BUNDLE_KEEP must be a whole number/);
  });

  it('refuses a short admin key', () => {
    expect(() => loadConfig({ KERNEX_ADMIN_KEY: 'short' })).toThrow(/KERNEX_ADMIN_KEY/);
  });

  it('turns TLS on from files, or makes its own when a TLS listener is asked for without them', () => {
    expect(loadConfig({}).tls).toEqual({ mode: 'off' });
    expect(loadConfig({ KERNEX_MQTTS_PORT: '8883' })).toMatchObject({ tls: { mode: 'auto' }, https: false });
    expect(loadConfig({ KERNEX_HTTPS: 'true' })).toMatchObject({ tls: { mode: 'auto' }, https: true });
    expect(loadConfig({ KERNEX_TLS_CERT: '/etc/c.pem', KERNEX_TLS_KEY: '/etc/k.pem' })).toMatchObject({
      tls: { mode: 'files', certFile: '/etc/c.pem', keyFile: '/etc/k.pem' },
      https: true,
    });
    expect(() => loadConfig({ KERNEX_TLS_CERT: '/etc/c.pem' })).toThrow(/KERNEX_TLS_CERT and KERNEX_TLS_KEY must be given together/);
    expect(() => loadConfig({ KERNEX_HTTPS: 'maybe' })).toThrow(/KERNEX_HTTPS must be true or false/);
  });
});

describe('loadConfig: admin API limits', () => {
  it('defaults the rate limits, the body limit and CORS (off)', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ rateLimitPerMin: 600, registerRateLimitPerMin: 10, bodyLimitBytes: 1048576, corsOrigins: [] });
  });

  it('reads CORS origins as a comma-separated list', () => {
    expect(loadConfig({ KERNEX_CORS_ORIGINS: 'https://a.example.com, http://localhost:3000/' }).corsOrigins).toEqual([
      'https://a.example.com',
      'http://localhost:3000',
    ]);
    expect(loadConfig({ KERNEX_CORS_ORIGINS: '*' }).corsOrigins).toEqual(['*']);
  });

  it('names a bad limit or origin', () => {
    expect(() => loadConfig({ KERNEX_RATE_LIMIT_PER_MIN: '0' })).toThrow(/KERNEX_RATE_LIMIT_PER_MIN must be a whole number/);
    expect(() => loadConfig({ KERNEX_REGISTER_RATE_LIMIT_PER_MIN: 'many' })).toThrow(/KERNEX_REGISTER_RATE_LIMIT_PER_MIN/);
    expect(() => loadConfig({ KERNEX_BODY_LIMIT_BYTES: '-1' })).toThrow(/KERNEX_BODY_LIMIT_BYTES/);
    expect(() => loadConfig({ KERNEX_CORS_ORIGINS: 'https://a.example.com/path' })).toThrow(/KERNEX_CORS_ORIGINS/);
  });

  it('reads KERNEX_LOG_FORMAT as auto or json and refuses anything else', () => {
    expect(loadConfig({}).logFormat).toBe('auto');
    expect(loadConfig({ KERNEX_LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(() => loadConfig({ KERNEX_LOG_FORMAT: 'xml' })).toThrow("KERNEX_LOG_FORMAT must be auto or json, got 'xml'");
  });

  it('reads the PostgreSQL pool size, 10 by default, and names a bad one', () => {
    expect(loadConfig({}).pgPoolSize).toBe(10);
    expect(loadConfig({ KERNEX_PG_POOL_SIZE: '3' }).pgPoolSize).toBe(3);
    expect(() => loadConfig({ KERNEX_PG_POOL_SIZE: '0' })).toThrow(/KERNEX_PG_POOL_SIZE must be a whole number from 1 to 1000/);
  });
});
