import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createBroker, type KernexBroker } from '@kernex/broker';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { ApiKeysService } from './auth/api-keys.service.js';
import type { ServerConfig } from './config.js';
import { checkTraversableByOthers, prepareDataDir } from './data-dir.js';
import { StartupError } from './errors.js';
import { createMetrics } from './metrics.js';
import { connectDatabase, pingDatabase, type Sql } from './store/database.js';
import { ServerKeyService } from './services/server-key.service.js';
import { BundlesService } from './services/bundles.service.js';
import { LocalBundleStorage } from './storage/local-bundle-storage.js';
import { BundlesStore } from './store/bundles.pg.js';
import { DeploymentsStore } from './store/deployments.pg.js';
import { DeploymentsService } from './services/deployments.service.js';
import { Orchestrator } from './orchestrator/orchestrator.js';
import { DeviceAuthService } from './services/device-auth.service.js';
import { PgDeviceDirectory } from './services/device-directory.service.js';
import { PresenceWriter } from './services/presence-writer.js';
import { DevicesService } from './services/devices.service.js';
import { EnrollmentTokensService } from './services/enrollment-tokens.service.js';
import { MqttEndpoints } from './services/mqtt-endpoints.js';
import { RegistrationService } from './services/registration.service.js';
import { createTelemetryMetrics, TelemetryIngest } from './services/telemetry-ingest.service.js';
import { TelemetryService } from './services/telemetry.service.js';
import { ApiKeysStore } from './store/api-keys.pg.js';
import { TelemetryStore } from './store/telemetry.pg.js';
import { AuditStore } from './store/audit.pg.js';
import { AuditService } from './services/audit.service.js';
import { DevicesStore } from './store/devices.pg.js';
import { EnrollmentTokensStore } from './store/enrollment-tokens.pg.js';
import { SettingsStore } from './store/settings.pg.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './store/embedded-postgres.js';
import { migrate } from './store/migrate.js';
import { explainMigrationPrivilege } from './store/privileges.js';
import { loadTlsMaterial } from './tls/tls-material.js';
import { registerServerGauges } from './monitoring/server-gauges.js';
import { FleetStatsStore } from './store/fleet-stats.pg.js';

/** A started server: its parts and the ports it bound. */
export interface RunningServer {
  config: Readonly<ServerConfig>;
  httpPort: number;
  mqttPort: number;
  /** Bound MQTT-over-TLS and MQTT-over-WebSocket ports, when those listeners are on. */
  mqttsPort: number | undefined;
  wsPort: number | undefined;
  /** The self-made CA devices pin, in the zero-setup TLS mode. */
  caFile: string | undefined;
  /** http(s)://127.0.0.1:{httpPort}: what local tools and tests use. */
  httpUrl: string;
  sql: Sql;
  broker: KernexBroker;
  app: FastifyInstance;
  services: {
    bundles: BundlesService;
    deployments: DeploymentsService;
    orchestrator: Orchestrator;
    apiKeys: ApiKeysService;
    audit: AuditService;
    serverKey: ServerKeyService;
    devices: DevicesService;
    deviceAuth: DeviceAuthService;
    enrollmentTokens: EnrollmentTokensService;
    registration: RegistrationService;
    telemetry: TelemetryService;
    telemetryIngest: TelemetryIngest;
    presence: PresenceWriter;
  };
  /** Startup timings in milliseconds, logged and reported by benchmarks. */
  timings: { database: number; ready: number };
  /** Orderly stop: listeners, MQTT clients, HTTP, pool, embedded PostgreSQL. Safe to call twice. */
  close(): Promise<void>;
}

/** Turns a listen error into the operator's one line. */
function listenError(err: unknown, variable: string, port: number): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new StartupError(`${variable} ${port} is already in use`, { cause: err });
  if (code === 'EACCES') return new StartupError(`${variable} ${port} needs privileges this process lacks`, { cause: err });
  return new StartupError(`${variable} ${port}: ${(err as Error).message}`, { cause: err });
}

/**
 * Boots Kernex: data directory, database (embedded unless `DATABASE_URL`),
 * migrations, broker, HTTP. On any failure it undoes what it started and
 * rethrows, so the caller only has to print the message.
 */
/** Extra start options that are not configuration (tests use them). */
export interface StartOptions {
  /** Use this signing key when the database has none yet, instead of making one (RSA-4096 takes seconds). */
  signingKeyPem?: string;
}

export async function startServer(config: Readonly<ServerConfig>, log: Logger, options: StartOptions = {}): Promise<RunningServer> {
  const t0 = performance.now();
  const cleanups: Array<() => Promise<void>> = [];
  const undo = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch((err) => log.warn({ err }, 'cleanup failed'));
  };

  try {
    await prepareDataDir(config.dataDir);

    let url = config.databaseUrl;
    let embedded: EmbeddedDatabase | undefined;
    if (!url) {
      await checkTraversableByOthers(config.dataDir);
      embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort, log);
      cleanups.push(() => embedded!.stop());
      url = embedded.url;
    }
    const sql = await connectDatabase(url, log.child({ mod: 'db' }), config.pgPoolSize);
    cleanups.push(() => sql.end({ timeout: 5 }));
    const databaseMs = performance.now() - t0;
    try {
      await migrate(sql, log.child({ mod: 'migrate' }));
    } catch (err) {
      const line = await explainMigrationPrivilege(sql, err);
      if (line) throw new StartupError(line, { cause: err });
      throw err;
    }

    const serverKey = await ServerKeyService.load(new SettingsStore(sql), log.child({ mod: 'server-key' }), options.signingKeyPem);
    const apiKeys = new ApiKeysService(new ApiKeysStore(sql), log.child({ mod: 'api-keys' }));
    const audit = new AuditService(new AuditStore(sql), log.child({ mod: 'audit' }));

    const storage = await LocalBundleStorage.open(path.join(config.dataDir, 'bundles'));
    const bundlesStore = new BundlesStore(sql);
    const bundles = new BundlesService(bundlesStore, storage, serverKey, log.child({ mod: 'bundles' }), {
      maxBytes: config.maxBundleBytes,
      limits: config.archiveLimits,
    });
    const devicesStore = new DevicesStore(sql);
    // The broker's memory is gone: nobody is connected until the broker says so.
    const wasOnline = await devicesStore.markAllOffline();
    if (wasOnline > 0) log.info({ devices: wasOnline }, 'marked devices offline at start');
    const presence = new PresenceWriter(devicesStore, log.child({ mod: 'presence' }));
    cleanups.push(() => presence.close()); // runs after the broker has closed (cleanups run in reverse)

    const metrics = createMetrics();
    // Before the broker: cleanups run in reverse, so the broker stops feeding the ingest before its last flush.
    const telemetryStore = new TelemetryStore(sql);
    const telemetryMetrics = createTelemetryMetrics(metrics.registry);
    const telemetryIngest = new TelemetryIngest(telemetryStore, log.child({ mod: 'telemetry' }), telemetryMetrics);
    telemetryIngest.start();
    cleanups.push(() => telemetryIngest.stop());
    const telemetry = new TelemetryService(telemetryStore, log.child({ mod: 'telemetry' }), config.telemetryRetentionDays);
    telemetry.startRetention();
    cleanups.push(async () => telemetry.stopRetention());
    const directory = new PgDeviceDirectory(devicesStore, presence);
    const broker = await createBroker({ log, registry: metrics.registry, directory });
    // The broker has validated each sample against the shared schema and its size limit.
    broker.on('device:telemetry', (deviceId, sample) => telemetryIngest.add(deviceId, sample));
    cleanups.push(() => broker.close());
    const tls = await loadTlsMaterial(config, log.child({ mod: 'tls' }));
    try {
      await broker.listen({ host: config.host, mqttPort: config.mqttPort, mqttsPort: config.mqttsPort, wsPort: config.wsPort, tls });
    } catch (err) {
      const kind = (err as { listener?: string }).listener;
      if (kind === 'mqtts') throw listenError(err, 'KERNEX_MQTTS_PORT', config.mqttsPort!);
      if (kind === 'ws') throw listenError(err, 'KERNEX_WS_PORT', config.wsPort!);
      throw listenError(err, 'KERNEX_MQTT_PORT', config.mqttPort);
    }
    const portOf = (kind: string): number | undefined => broker.listeners.find((l) => l.kind === kind)?.port;
    const mqttPort = portOf('mqtt')!;
    const mqttsPort = portOf('mqtts');
    const wsPort = portOf('ws');

    const deviceAuth = new DeviceAuthService(devicesStore, log.child({ mod: 'device-auth' }));
    const devices = new DevicesService(devicesStore, broker, [deviceAuth], log.child({ mod: 'devices' }));
    const enrollmentTokens = new EnrollmentTokensService(new EnrollmentTokensStore(sql));
    const endpoints = new MqttEndpoints(config.publicUrl, { mqtt: mqttPort, mqtts: mqttsPort, ws: wsPort });
    const registration = new RegistrationService(devicesStore, endpoints, serverKey.publicKeyPem, log.child({ mod: 'registration' }));

    const deploymentsStore = new DeploymentsStore(sql);
    bundles.deviceAccess = (deviceId, bundleId) => deploymentsStore.deviceMayFetch(sql, deviceId, bundleId);
    const publicBase = (config.publicUrl ?? `http://${config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host}:{port}`).replace(/\/+$/, '');
    let httpPortBound = 0;
    const orchestrator = new Orchestrator({
      store: deploymentsStore,
      link: broker,
      log,
      registry: metrics.registry,
      bundleUrl: (id) => `${publicBase.replace('{port}', String(httpPortBound))}/api/v1/bundles/${id}/blob`,
      tickMs: config.orchestratorTickMs,
    });
    const deployments = new DeploymentsService(deploymentsStore, bundlesStore, orchestrator, log.child({ mod: 'deployments' }));

    const checks = { database: () => pingDatabase(sql), broker: () => broker.isListening() };
    let presenceWritten = 0;
    presence.on('flushed', (n) => (presenceWritten += n));
    registerServerGauges(metrics.registry, {
      ready: async () => (await checks.database()) && checks.broker(),
      fleet: new FleetStatsStore(sql),
      writers: [
        { name: 'telemetry', backlog: () => telemetryIngest.backlog, written: async () => (await telemetryMetrics.persisted.get()).values[0]?.value ?? 0 },
        { name: 'presence', backlog: () => presence.backlog, written: () => presenceWritten },
      ],
      tlsCertPem: tls?.cert,
    });
    const app = await buildApp({
      log,
      metrics,
      checks,
      apiKeys,
      bundles: { service: bundles, maxBundleBytes: config.maxBundleBytes },
      deployments,
      audit,
      http: {
        rateLimitPerMin: config.rateLimitPerMin,
        registerRateLimitPerMin: config.registerRateLimitPerMin,
        bodyLimitBytes: config.bodyLimitBytes,
        corsOrigins: config.corsOrigins,
      },
      verifyDeviceToken: deviceAuth.verify,
      devices,
      registration,
      enrollmentTokens,
      telemetry,
      https: config.https ? tls : undefined,
    });
    cleanups.push(() => app.close());
    try {
      await app.listen({ port: config.httpPort, host: config.host });
    } catch (err) {
      throw listenError(err, 'KERNEX_HTTP_PORT', config.httpPort);
    }
    const httpPort = (app.server.address() as AddressInfo).port;
    httpPortBound = httpPort;
    // Before the broker closes (cleanups run in reverse), so no tick publishes into a closed broker.
    orchestrator.start();
    cleanups.push(() => orchestrator.stop());

    // After the listeners are up, so a start that fails cannot swallow the only copy of the key.
    const firstAdminKey = await apiKeys.bootstrap(config.adminKey);
    if (firstAdminKey) {
      // DESIGN §6: printed once, on stderr, never logged.
      process.stderr.write(`kernex server: created the first admin API key (shown once, keep it): ${firstAdminKey}\n`);
    }
    const readyMs = performance.now() - t0;
    log.info(
      { httpPort, mqttPort, mqttsPort, wsPort, https: config.https, caFile: tls?.caFile, embeddedDatabase: Boolean(embedded), databaseMs: Math.round(databaseMs), readyMs: Math.round(readyMs) },
      'kernex server ready',
    );

    let closing: Promise<void> | undefined;
    return {
      config,
      httpPort,
      mqttPort,
      mqttsPort,
      wsPort,
      caFile: tls?.caFile,
      httpUrl: `${config.https ? 'https' : 'http'}://127.0.0.1:${httpPort}`,
      sql,
      broker,
      app,
      services: { apiKeys, audit, serverKey, bundles, deployments, orchestrator, devices, deviceAuth, enrollmentTokens, registration, presence, telemetry, telemetryIngest },
      timings: { database: databaseMs, ready: readyMs },
      close() {
        closing ??= undo();
        return closing;
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}
