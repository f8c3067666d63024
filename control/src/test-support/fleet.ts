import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnAgent, type AgentProcess } from './spawn-agent.js';
import { api } from './devices.js';

/** A real `kernex-agent` process with its own state directory. */
export interface FleetAgent {
  agent: AgentProcess;
  stateDir: string;
  deviceId: string;
  /** Where `current` of bundle `name` points, or undefined. */
  current(name: string): Promise<string | undefined>;
  /** Stops the process (SIGTERM) and waits for it. */
  stop(): Promise<void>;
  /** Starts it again on the same state directory; resolves once connected. */
  restart(): Promise<void>;
}

/** An enrollment token that accepts `uses` devices at once. */
export async function enrollmentToken(httpUrl: string, headers: Record<string, string>, uses: number): Promise<string> {
  const res = await api('POST', `${httpUrl}/api/v1/enrollment-tokens`, headers, { uses, expiresInS: 3600 });
  if (res.status !== 201) throw new Error(`enrollment token: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.token as string;
}

/** Starts an agent against `server` and resolves once it is registered, accepted and connected. */
export async function startAgent(server: string, token: string, env: Record<string, string> = {}): Promise<FleetAgent> {
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-fleet-'));
  const spawn = (): AgentProcess =>
    spawnAgent({ KERNEX_SERVER: server, KERNEX_ENROLL_TOKEN: token, KERNEX_STATE_DIR: stateDir, KERNEX_KEY_TYPE: 'p256', KERNEX_TELEMETRY_S: '3600', ...env });
  const fleet: FleetAgent = {
    agent: spawn(),
    stateDir,
    deviceId: '',
    async current(name) {
      return fs.readlink(path.join(stateDir, 'bundles', name, 'current')).catch(() => undefined);
    },
    async stop() {
      await fleet.agent.kill('SIGTERM');
    },
    async restart() {
      fleet.agent = spawn();
      await fleet.agent.waitFor('connected');
    },
  };
  const identity = await fleet.agent.waitFor('device identity loaded');
  fleet.deviceId = identity.deviceId as string;
  await fleet.agent.waitFor('connected');
  return fleet;
}
