import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { createBroker, LISTEN_BACKLOG, type KernexBroker } from '@kernex/broker';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { ApiKeysService } from './services/api-keys.service.js';
import type { ServerConfig } from './config.js';
import { checkTraversableByOthers, lockDataDir, prepareDataDir } from './data-dir.js';
import { StartupError } from './errors.js';
import { createMetrics, createOrchestratorMetrics, registerServerGauges } from './metrics.js';
import { connectDatabase, pingDatabase, type Sql } from './store/database.js';
import { ServerKeyService } from './services/server-key.service.js';
import { BundlesService } from './services/bundles.service.js';
import { openBundleStorage } from './storage/open-bundle-storage.js';
import type { BundleStorage } from './storage/bundle-storage.js';
import { RetentionService } from './services/retention.service.js';
import { HistoryStore } from './store/history.pg.js';
import { BundlesStore } from './store/bundles.pg.js';
import { DeltasStore } from './store/deltas.pg.js';
import { DeltaService } from './services/delta.service.js';
import { DeploymentsStore } from './store/deployments.pg.js';
import { DeploymentsService } from './services/deployments.service.js';
import { EventWriter } from './orchestrator/event-writer.js';
import { Orchestrator } from './orchestrator/orchestrator.js';
import { DeviceAuthService } from './services/device-auth.service.js';
import { PgDeviceDirectory } from './services/device-directory.service.js';
import { PRESENCE_INTERVAL_MS, PresenceWriter } from './presence/presence-writer.js';
import { DevicesService } from './services/devices.service.js';
import { EnrollmentTokensService } from './services/enrollment-tokens.service.js';
import { PublicEndpoints } from './services/public-endpoints.js';
import { RegistrationService } from './services/registration.service.js';
import { TelemetryIngest } from './services/telemetry-ingest.service.js';
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
import { FleetStatsStore } from './store/fleet-stats.pg.js';
import { markLiveServer } from './store/live-server.pg.js';
import { portInUse } from './net/free-port.js';
import { loadTlsMaterial } from './tls/tls-material.js';
import { SessionsService } from './services/sessions.service.js';
import { InProcessEventBus, type LiveEvent, type LiveEventBus } from './events/event-bus.js';
import { LiveSources } from './events/live-sources.js';
import { FleetService } from './services/fleet.service.js';
import { FleetStore } from './store/fleet.pg.js';
import { SessionsStore } from './store/sessions.pg.js';
import { ClusterNode } from './cluster/cluster-node.js';
import { RedisBus } from './cluster/redis-bus.js';
import { RedisLiveEventBus } from './cluster/redis-live-event-bus.js';
import { NodesService, type NodeSource } from './services/nodes.service.js';
import { NodesStore } from './store/nodes.pg.js';

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
    retention: RetentionService;
    events: EventWriter;
    sessions: SessionsService;
    bus: LiveEventBus;
    deltas: DeltaService;
    /** The bundle storage (file or S3), as the services use it. */
    storage: BundleStorage;
    nodes: NodesService;
  };
  /** This node's id (KERNEX_NODE_ID, or host:port). */
  nodeId: string;
  /** The node's place in a cluster (KERNEX_REDIS_URL); undefined on a single node. */
  cluster: { node: ClusterNode; bus: RedisBus } | undefined;
  /** The API URL a person on this machine uses (the public URL when set). */
  apiUrl: string;
  /** The admin key this start made (first start without KERNEX_ADMIN_KEY), already printed once. */
  firstAdminKey: string | undefined;
  /** Startup timings in milliseconds, logged and reported by benchmarks. */
  timings: { database: number; ready: number };
  /** Orderly stop: listeners, MQTT clients, HTTP, pool, embedded PostgreSQL. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Refuses ports another process holds before anything is touched; port 0 picks a free one later.
 * Not KERNEX_PG_PORT: an embedded PostgreSQL left running by a killed server may hold it, and is
 * stopped first (the data directory lock makes it ours); PostgreSQL names the port itself otherwise.
 */
async function checkPortsFree(config: Readonly<ServerConfig>): Promise<void> {
  const ports: Array<[string, number | undefined, string]> = [
    ['KERNEX_HTTP_PORT', config.httpPort, config.host],
    ['KERNEX_MQTT_PORT', config.mqttPort, config.host],
    ['KERNEX_MQTTS_PORT', config.mqttsPort, config.host],
    ['KERNEX_WS_PORT', config.wsPort, config.host],
  ];
  for (const [variable, port, host] of ports) {
    if (!port) continue;
    const err = await portInUse(host, port);
    if (err) throw listenError(err, variable, port);
  }
}

/** The API URL a person on this machine uses: the public URL when set, else loopback. */
function localApiUrl(config: Readonly<ServerConfig>, httpPort: number): string {
  if (config.publicUrl) return config.publicUrl.replace(/\/+$/, '');
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;
  return `${config.https ? 'https' : 'http'}://${host}:${httpPort}`;
}

/** What a person reads on the terminal once the server is ready: where it is and what to type next. */
export function readyLines(apiUrl: string, firstAdminKey: string | undefined, keyFromEnv: boolean): string {
  const key = firstAdminKey ?? (keyFromEnv ? '$KERNEX_ADMIN_KEY' : '<an admin API key>');
  return (
    `kernex server: ready; API at ${apiUrl}, console at ${apiUrl}/console/\n` +
    `kernex server: next, in another terminal: export KERNEX_URL=${apiUrl} KERNEX_API_KEY=${key}; npx kernex devices ls\n` +
    `kernex server: or save them once: npx kernex login --url ${apiUrl} --api-key ${key}\n`
  );
}

/** Turns a listen error into the operator's one line. */
function listenError(err: unknown, variable: string, port: number): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new StartupError(`${variable} ${port} is already in use`, { cause: err });
  if (code === 'EACCES') return new StartupError(`${variable} ${port} needs privileges this process lacks`, { cause: err });
  return new StartupError(`${variable} ${port}: ${(err as Error).message}`, { cause: err });
}

/** Extra start options that are not configuration (tests use them). */
export interface StartOptions {
  /** Use this signing key when the database has none yet, instead of making one (RSA-4096 takes seconds). */
  signingKeyPem?: string;
}

/** Wakes the leader through PostgreSQL NOTIFY, at most once per few milliseconds however many kicks come in. */
function wakeLeader(store: NodesStore, log: Logger): () => void {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    setTimeout(() => {
      pending = false;
      store.wake().catch((err: unknown) => log.warn({ err }, 'waking the orchestrator leader failed'));
    }, 20).unref();
  };
}

/**
 * Boots Kernex: data directory, database (embedded unless `DATABASE_URL`),
 * migrations, broker, HTTP. On any failure it undoes what it started and
 * rethrows, so the caller only has to print the message.
 */
export async function startServer(config: Readonly<ServerConfig>, log: Logger, options: StartOptions = {}): Promise<RunningServer> {
  const t0 = performance.now();
  let started = false;
  const cleanups: Array<() => Promise<void>> = [];
  const undo = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch((err) => log.warn({ err }, 'cleanup failed'));
  };

  try {
    // Before anything is touched (DESIGN §1): the data directory is ours, and the ports are free.
    await prepareDataDir(config.dataDir);
    const dataDirLock = await lockDataDir(config.dataDir);
    cleanups.push(() => dataDirLock.release()); // runs last
    await checkPortsFree(config);
    // Before the database: a bucket that is missing or unreachable ends the start at once, in one line.
    const storage = await openBundleStorage(config);
    cleanups.push(async () => storage.close?.());
    const metrics = createMetrics();

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

    const bundlesStore = new BundlesStore(sql);
    const deploymentsStore = new DeploymentsStore(sql);
    const deltasStore = new DeltasStore(sql);
    const retention = new RetentionService({
      deltaKeysNamed: (keys) => deltasStore.existingKeys(sql, keys),
      bundles: bundlesStore,
      history: new HistoryStore(sql),
      storage,
      log: log.child({ mod: 'retention' }),
      metrics: metrics.retention,
      keep: config.bundleKeep,
      executionRetentionDays: config.executionRetentionDays,
      auditRetentionDays: config.auditRetentionDays,
    });
    const deltas = new DeltaService(deltasStore, storage, serverKey, log.child({ mod: 'deltas' }));
    const bundles = new BundlesService(
      bundlesStore,
      storage,
      serverKey,
      log.child({ mod: 'bundles' }),
      {
        maxBytes: config.maxBundleBytes,
        limits: config.archiveLimits,
        onStorageError: (op) => metrics.retention.storageErrors.inc({ op }),
        afterStore: () => retention.requestPrune(),
        onUploadEnded: (outcome) => metrics.retention.uploads.inc({ outcome }),
        onIndex: (row, entries) => deltas.recordIndex(row, entries),
      },
      (deviceId, bundleId) => deploymentsStore.deviceMayFetch(deploymentsStore.pool, deviceId, bundleId),
    );
    retention.start();
    cleanups.push(() => retention.stop());
    const devicesStore = new DevicesStore(sql);
    const live = await markLiveServer(url, log.child({ mod: 'live-server' }));
    cleanups.push(() => live.release());
    if (live.alone) {
      // The broker's memory is gone: nobody is connected until the broker says so.
      const wasOnline = await devicesStore.markAllOffline();
      if (wasOnline > 0) log.info({ devices: wasOnline }, 'marked devices offline at start');
    } else {
      // Those devices may be connected to the other server: their presence is its to write.
      log.warn('another kernex server is running on this database; presence left as it is');
    }
    await live.admitOthers();

    // DESIGN §8: with KERNEX_REDIS_URL this process is one node of a cluster; without it nothing here starts.
    const nodeId = config.nodeId ?? `${os.hostname()}:${config.httpPort || process.pid}`;
    const writerMetrics = metrics.writers;
    let cluster: { node: ClusterNode; bus: RedisBus; store: NodesStore } | undefined;
    // Bound once the broker and the orchestrator exist; the node starts before them.
    let connections = (): number => 0;
    let onLeadership = (_leader: boolean): void => {};
    let onLapsed = (): void => {};
    if (config.redisUrl) {
      const bus = await RedisBus.connect(config.redisUrl, nodeId, log.child({ mod: 'cluster-bus' }), metrics.registry);
      cleanups.push(() => bus.close());
      const nodesStore = new NodesStore(url, sql);
      cleanups.push(() => nodesStore.close()); // after the lease has ended (below)
      const node = await ClusterNode.start({
        id: nodeId,
        store: nodesStore,
        log: log.child({ mod: 'cluster' }),
        registry: metrics.registry,
        connections: () => connections(),
        onLeadership: (leader) => onLeadership(leader),
        onLapsed: () => onLapsed(),
      });
      cleanups.push(() => node.stop()); // after the broker has closed and presence is written
      devicesStore.writeAsNode({ id: nodeId, generation: node.generation });
      cluster = { node, bus, store: nodesStore };
    }
    const node = cluster?.node;
    // The installation's time: in a cluster the database's (DESIGN §8), so a node whose clock is off
    // judges device tokens and tells registering devices the time as every other node does.
    const installationNow = node ? (): number => node.toDatabaseTime(new Date()).getTime() : Date.now;
    const presence = new PresenceWriter(devicesStore, log.child({ mod: 'presence' }), node ? { clock: (at) => node.toDatabaseTime(at) } : {}, writerMetrics);
    cleanups.push(() => presence.close()); // runs after the broker has closed (cleanups run in reverse)

    // Before the broker: cleanups run in reverse, so the broker stops feeding the ingest before its last flush.
    const telemetryStore = new TelemetryStore(sql);
    const telemetryIngest = new TelemetryIngest(telemetryStore, log.child({ mod: 'telemetry' }), metrics.telemetry, {}, writerMetrics);
    telemetryIngest.start();
    cleanups.push(() => telemetryIngest.stop());
    const telemetry = new TelemetryService(telemetryStore, log.child({ mod: 'telemetry' }), config.telemetryRetentionDays);
    telemetry.startRetention();
    cleanups.push(async () => telemetry.stopRetention());
    // Before the broker, like the ingest: its last commit runs after the broker has closed.
    const eventWriter = new EventWriter(deploymentsStore, log, metrics.events, writerMetrics);
    cleanups.push(() => eventWriter.close());
    const directory = new PgDeviceDirectory(devicesStore, presence);
    // An event's PUBACK follows its commit (DESIGN §3).
    const broker = await createBroker({
      now: installationNow,
      log,
      registry: metrics.registry,
      directory,
      storeEvent: (deviceId, event, connection) => eventWriter.submit(deviceId, event, connection),
      bus: cluster?.bus,
      maxUnauthenticatedPerAddress: config.mqttPendingPerAddress,
    });
    connections = () => broker.connectedCount;
    cluster?.bus.holdsWith((deviceId) => broker.hasConnection(deviceId));
    // Where devices are, for commands that cross to one node (DESIGN §8): what this broker holds, then the
    // database's presence for devices no announcement has told of yet. Again after a Redis outage.
    const seedOwners = async (): Promise<void> => {
      if (!cluster) return;
      cluster.bus.owners.reset(broker.connectedDevices());
      try {
        cluster.bus.owners.seed(await devicesStore.sessionNodes());
      } catch (err) {
        log.warn({ err }, 'device owners not read from the database; commands to unknown devices go to every node');
      }
    };
    await seedOwners();
    // After a Redis outage: the connections made here meanwhile were announced to nobody. Only the
    // devices PostgreSQL still records on this node: one that moved elsewhere meanwhile is not claimed back.
    const announceHeld = async (): Promise<void> => {
      if (!cluster) return;
      try {
        await presence.flush(); // the connects made here meanwhile, recorded first
        // ...and those of the other nodes: a device that moved from here during the outage may still
        // wait in another node's batch, and must not be claimed back by a connection left here.
        await sleep(2 * PRESENCE_INTERVAL_MS, undefined, { ref: false });
        const held = cluster.bus.announceHeld(await devicesStore.recordedHere(broker.connectedDevices()));
        log.info({ devices: held }, 'told the other nodes which devices this node holds');
      } catch (err) {
        log.warn({ err }, 'devices held here not announced; commands to them reach this node through every node');
      }
    };
    onLapsed = () => {
      const now = new Date();
      for (const deviceId of broker.connectedDevices()) presence.reassert(deviceId, now);
    };
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

    // The live event stream (DESIGN §6): one node's in-process bus; in a cluster every node's changes
    // reach every node's streams over Redis (DESIGN §8).
    const onLiveError = (err: unknown): void => log.warn({ err }, 'live event listener failed');
    const bus: LiveEventBus = cluster ? new RedisLiveEventBus<LiveEvent>(cluster.bus, onLiveError) : new InProcessEventBus(onLiveError);
    cleanups.push(() => bus.close());
    let liveEvents: LiveSources | undefined;
    const deviceAuth = new DeviceAuthService(devicesStore, log.child({ mod: 'device-auth' }), installationNow);
    // In a cluster a reject or decommission reaches the device, and every credential cache, on whichever node (DESIGN §8).
    const deviceSessions = cluster
      ? {
          disconnectDevice: async (deviceId: string) => {
            cluster!.bus.publish({ kind: 'disconnect', deviceId });
            await broker.disconnectDevice(deviceId);
          },
        }
      : broker;
    cluster?.bus.on('message', (msg) => {
      if (msg.kind !== 'disconnect') return;
      deviceAuth.forget(msg.deviceId);
      void broker.disconnectDevice(msg.deviceId);
    });
    const devices = new DevicesService(devicesStore, deviceSessions, [deviceAuth], log.child({ mod: 'devices' }), (d) => liveEvents?.deviceChanged(d));
    const enrollmentTokens = new EnrollmentTokensService(new EnrollmentTokensStore(sql));
    // Every URL told to devices comes from here (DESIGN §7); built once HTTP listens, before any device is served.
    let endpoints: PublicEndpoints | undefined;
    const publicEndpoints = (): PublicEndpoints => {
      if (!endpoints) throw new Error('public endpoints asked before the HTTP listener is up');
      return endpoints;
    };
    const registration = new RegistrationService(devicesStore, publicEndpoints, serverKey.publicKeyPem, log.child({ mod: 'registration' }), installationNow);

    const orchestrator = new Orchestrator({
      store: deploymentsStore,
      link: broker,
      log,
      metrics: createOrchestratorMetrics(metrics.registry, () => deploymentsStore.stateTotals(deploymentsStore.pool).catch(() => undefined)),
      bundleUrl: (id) => publicEndpoints().bundleBlobUrl(id),
      deltaRefs: (db, bundle, deviceIds) => deltas.refsFor(db, bundle, deviceIds, publicEndpoints()),
      tickMs: config.orchestratorTickMs,
      events: eventWriter,
      onChange: (c) => liveEvents?.orchestratorChanged(c),
      leadership: cluster && { isLeader: () => cluster!.node.isLeader(), wake: wakeLeader(cluster.store, log) },
    });
    if (cluster) {
      const { node, bus: clusterBus, store } = cluster;
      onLeadership = (leader) => {
        if (leader) orchestrator.kick();
      };
      // Events stored on any node, and deployments made there, wake the leader (DESIGN §8).
      const listening = await store.listenWake(() => {
        if (node.isLeader()) orchestrator.kick();
      });
      cleanups.push(() => listening.unlisten().catch(() => {}));
      if (node.isLeader()) orchestrator.kick();
      // The bus is at most once: whatever crossed while Redis was away is sent again from the database.
      clusterBus.on('recovered', () => {
        void seedOwners().then(announceHeld);
        const here = broker.connectedDevices();
        log.info({ devices: here.length }, 'healing connected devices after a redis outage');
        void orchestrator.healDevices(here);
      });
    }
    const thisNode: NodeSource = {
      list: async () => [{ id: nodeId, startedAt: new Date(performance.timeOrigin), leaseExpiresAt: null, leader: true, connections: broker.connectedCount }],
    };
    const nodes = new NodesService(cluster ? cluster.store : thisNode);
    const deployments = new DeploymentsService(deploymentsStore, bundlesStore, orchestrator, log.child({ mod: 'deployments' }), (bundle, ids) => deltas.prepareFor(bundle, ids));
    liveEvents = new LiveSources({ bus, presence: broker, deployment: (id) => deployments.get(id), device: (id) => devices.get(id), log });
    liveEvents.start();
    cleanups.push(() => liveEvents!.stop());
    const sessions = new SessionsService(new SessionsStore(sql), apiKeys, log.child({ mod: 'sessions' }));
    sessions.startPruning();
    cleanups.push(async () => sessions.stopPruning());
    const fleet = new FleetService(
      new FleetStore(sql),
      async (id) => (await devicesStore.get(id)) !== undefined,
      async (id) => (await deploymentsStore.get(sql, id)) !== undefined,
    );

    const checks = {
      started: () => started,
      database: () => pingDatabase(sql),
      broker: () => broker.isListening(),
      writers: () => writerMetrics.healthy(),
      ...(cluster ? { redis: () => cluster!.bus.isUp() } : {}),
    };
    registerServerGauges(metrics.registry, {
      // What /readyz answers (routes/health.routes.ts).
      ready: async () => checks.started() && (await checks.database()) && checks.broker() && Object.values(checks.writers()).every(Boolean),
      fleet: new FleetStatsStore(sql),
      tlsCertPem: tls?.cert,
    });
    const app = await buildApp({
      log,
      metrics,
      checks,
      apiKeys,
      bundles: { service: bundles, maxBundleBytes: config.maxBundleBytes, deltas },
      deployments,
      audit,
      http: {
        rateLimitPerMin: config.rateLimitPerMin,
        registerRateLimitPerMin: config.registerRateLimitPerMin,
        bodyLimitBytes: config.bodyLimitBytes,
        headersTimeoutMs: config.headersTimeoutMs,
        bodyTimeoutMs: config.bodyTimeoutMs,
        idleTimeoutMs: config.idleTimeoutMs,
        corsOrigins: config.corsOrigins,
      },
      verifyDeviceToken: deviceAuth.verify,
      devices,
      registration,
      enrollmentTokens,
      telemetry,
      https: config.https ? tls : undefined,
      console: { sessions, bus, fleet },
      nodes,
      rateLimitRedis: cluster?.bus.client,
    });
    cleanups.push(() => app.close());
    // Before the HTTP listener opens, so no request is ever answered without the key in place
    // (DESIGN §6). Printed as soon as it is stored: a start that fails later cannot swallow it.
    const firstAdminKey = await apiKeys.bootstrap(config.adminKey);
    if (firstAdminKey) {
      // DESIGN §6: printed once, on stderr, never logged.
      process.stderr.write(`kernex server: created the first admin API key (shown once, keep it): ${firstAdminKey}\n`);
    }
    try {
      await app.listen({ port: config.httpPort, host: config.host, backlog: LISTEN_BACKLOG }); // registrations come in storms too
    } catch (err) {
      throw listenError(err, 'KERNEX_HTTP_PORT', config.httpPort);
    }
    const httpPort = (app.server.address() as AddressInfo).port;
    endpoints = new PublicEndpoints({ publicUrl: config.publicUrl, https: config.https, host: config.host, ports: { http: httpPort, mqtt: mqttPort, mqtts: mqttsPort, ws: wsPort }, mqttUrls: config.mqttUrls });
    // Before the broker closes (cleanups run in reverse), so no tick publishes into a closed broker.
    orchestrator.start();
    cleanups.push(() => orchestrator.stop());

    const readyMs = performance.now() - t0;
    const apiUrl = localApiUrl(config, httpPort);
    started = true; // from here /readyz answers 200
    log.info(
      { url: apiUrl, nodeId, cluster: Boolean(cluster), httpPort, mqttPort, mqttsPort, wsPort, https: config.https, caFile: tls?.caFile, embeddedDatabase: Boolean(embedded), databaseMs: Math.round(databaseMs), readyMs: Math.round(readyMs) },
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
      apiUrl,
      firstAdminKey,
      sql,
      broker,
      app,
      services: { apiKeys, audit, serverKey, bundles, deployments, orchestrator, devices, deviceAuth, enrollmentTokens, registration, presence, telemetry, telemetryIngest, retention, events: eventWriter, sessions, bus, deltas, storage, nodes },
      nodeId,
      cluster: cluster && { node: cluster.node, bus: cluster.bus },
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
