import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../net/free-port.js';
import { spawnServer, type ServerProcess } from './spawn-server.js';

export const CLUSTER_ADMIN_KEY = 'kx-cluster-test-admin-key-0123456789';
export const adminHeaders = { authorization: `Bearer ${CLUSTER_ADMIN_KEY}` };

/** One `kernex server` node of a test cluster, on fixed loopback ports so it can be restarted on them. */
export interface ClusterNodeProcess {
  id: string;
  dataDir: string;
  bundleDir: string;
  httpPort: number;
  mqttPort: number;
  httpUrl: string;
  mqttUrl: string;
  server: ServerProcess;
  /** Starts the node (again, after a kill) and resolves once it is ready. */
  start(extraEnv?: Record<string, string>): Promise<void>;
  /** SIGKILL, as a power cut: nothing orderly runs. */
  kill(): Promise<void>;
  /** SIGTERM, an orderly stop. */
  stop(): Promise<void>;
}

/**
 * `count` nodes on one database and one Redis. Their ports are chosen first, so
 * every node can be told the whole MQTT URL list (KERNEX_MQTT_URLS); they share
 * one bundle directory, and each tells devices its own HTTP URL. Nodes start one after
 * another: the first makes the signing key, the others load it.
 */
export async function startCluster(opts: {
  count: number;
  databaseUrl: string;
  redisUrl: string;
  env?: Record<string, string>;
  /** Settings of one node (by index) over `env`, e.g. its own way to the database. */
  nodeEnv?: Array<Record<string, string> | undefined>;
}): Promise<ClusterNodeProcess[]> {
  const ports = [];
  for (let i = 0; i < opts.count; i++) ports.push({ http: await freePort(), mqtt: await freePort() });
  const mqttUrls = ports.map((p) => `mqtt://127.0.0.1:${p.mqtt}`).join(',');
  const nodes: ClusterNodeProcess[] = [];
  const bundleDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-cluster-bundles-'));
  for (let i = 0; i < opts.count; i++) {
    const { http, mqtt } = ports[i]!;
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `kernex-node${i + 1}-`));
    const env = {
      KERNEX_DATA_DIR: dataDir,
      KERNEX_HTTP_PORT: String(http),
      KERNEX_MQTT_PORT: String(mqtt),
      DATABASE_URL: opts.databaseUrl,
      KERNEX_REDIS_URL: opts.redisUrl,
      KERNEX_NODE_ID: `node-${i + 1}`,
      KERNEX_ADMIN_KEY: CLUSTER_ADMIN_KEY,
      KERNEX_MQTT_URLS: mqttUrls,
      // One bundle directory for every node (DESIGN §7: in a cluster, S3 or a shared directory).
      KERNEX_BUNDLE_DIR: bundleDir,
      KERNEX_ORCHESTRATOR_TICK_MS: '200',
      ...opts.env,
      ...opts.nodeEnv?.[i],
    };
    const node: ClusterNodeProcess = {
      id: `node-${i + 1}`,
      dataDir,
      bundleDir,
      httpPort: http,
      mqttPort: mqtt,
      httpUrl: `http://127.0.0.1:${http}`,
      mqttUrl: `mqtt://127.0.0.1:${mqtt}`,
      server: undefined as never,
      async start(extraEnv = {}) {
        node.server = spawnServer({ ...env, ...extraEnv });
        await node.server.ready;
      },
      async kill() {
        if (node.server.proc.exitCode === null && node.server.proc.signalCode === null) node.server.proc.kill('SIGKILL');
        await node.server.exited;
      },
      async stop() {
        if (node.server.proc.exitCode === null && node.server.proc.signalCode === null) node.server.proc.kill('SIGTERM');
        await node.server.exited;
      },
    };
    nodes.push(node); // before its start: a node that fails to start is stopped with the others
    try {
      await node.start();
    } catch (err) {
      await stopCluster(nodes);
      throw err;
    }
  }
  return nodes;
}

/** Stops every node still running (SIGKILL: tests end fast) and removes their data directories. */
export async function stopCluster(nodes: ClusterNodeProcess[]): Promise<void> {
  await Promise.all(nodes.map((n) => (n.server ? n.kill() : undefined)));
  await Promise.all(nodes.map((n) => fs.rm(n.dataDir, { recursive: true, force: true })));
  if (nodes[0]) await fs.rm(nodes[0].bundleDir, { recursive: true, force: true });
}
