import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { deviceIdFromPublicKey, signDeviceJwt } from '@kernex/shared';
import { spawnAgent, type AgentProcess } from './spawn-agent.js';
import { api } from './devices.js';

/** A real `kernex-agent` process with its own state directory. */
export interface FleetAgent {
  agent: AgentProcess;
  stateDir: string;
  deviceId: string;
  /** Where `current` of bundle `name` points, or undefined. */
  current(name: string): Promise<string | undefined>;
  /** Stops the process (SIGTERM), waits for it, and for the server to show the device offline (when the server is up). */
  stop(): Promise<void>;
  /** Starts it again on the same state directory; resolves once the server shows it online. */
  restart(): Promise<void>;
}

/** An enrollment token that accepts `uses` devices at once. */
export async function enrollmentToken(httpUrl: string, headers: Record<string, string>, uses: number): Promise<string> {
  const res = await api('POST', `${httpUrl}/api/v1/enrollment-tokens`, headers, { uses, expiresInS: 3600 });
  if (res.status !== 201) throw new Error(`enrollment token: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.token as string;
}

/** Resolves once `check()` is true, asking every 50 ms; rejects after `timeoutMs` with `what`. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The device's id and a `GET /api/v1/devices/{id}` as the device itself (device JWT), from the key in its state directory. */
/** GET with a device JWT: over fetch, or over node:https pinning `ca` (fetch takes no CA). */
async function getAsDevice(url: string, token: string, ca: Buffer | undefined): Promise<{ status: number; body: unknown }> {
  if (!ca) return api('GET', url, { authorization: `Bearer ${token}` });
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text ? (JSON.parse(text) as unknown) : undefined }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

async function selfView(server: string, stateDir: string, ca?: Buffer): Promise<{ deviceId: string; show(): Promise<{ status?: string; online?: boolean } | undefined> }> {
  const pem = await fs.readFile(path.join(stateDir, 'device.key'), 'utf8');
  const privateKey = createPrivateKey(pem);
  const deviceId = deviceIdFromPublicKey(privateKey);
  return {
    deviceId,
    async show() {
      try {
        const token = await signDeviceJwt({ privateKey, deviceId, aud: 'kernex-http' });
        const res = await getAsDevice(`${server}/api/v1/devices/${deviceId}`, token, ca);
        return res.status === 200 ? (res.body as { status: string; online: boolean }) : undefined;
      } catch {
        return undefined; // the server is down (a test killed it)
      }
    },
  };
}

/**
 * Starts an agent against `server` and resolves once it is registered, accepted and
 * connected: read from the server's API (the device's own view), not from its logs.
 */
export async function startAgent(server: string, token: string, env: Record<string, string> = {}): Promise<FleetAgent> {
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-fleet-'));
  const spawn = (): AgentProcess =>
    spawnAgent({ KERNEX_SERVER: server, KERNEX_ENROLL_TOKEN: token, KERNEX_STATE_DIR: stateDir, KERNEX_KEY_TYPE: 'p256', KERNEX_TELEMETRY_S: '3600', ...env });
  let view: Awaited<ReturnType<typeof selfView>> | undefined;
  const online = async (): Promise<void> => {
    await until(`device in ${stateDir} is online`, async () => {
      if (fleet.agent.proc.exitCode !== null) throw new Error(`kernex-agent exited (${fleet.agent.proc.exitCode}): ${fleet.agent.stderr}`);
      // The key file appears (atomically) once made; over HTTPS the agent's own CA file pins the server.
      const ca = env.KERNEX_CA_FILE ? await fs.readFile(env.KERNEX_CA_FILE) : undefined;
      view ??= await selfView(server, stateDir, ca).catch(() => undefined);
      return (await view?.show())?.online === true;
    });
    fleet.deviceId = view!.deviceId;
  };
  const fleet: FleetAgent = {
    agent: spawn(),
    stateDir,
    deviceId: '',
    async current(name) {
      return fs.readlink(path.join(stateDir, 'bundles', name, 'current')).catch(() => undefined);
    },
    async stop() {
      await fleet.agent.kill('SIGTERM');
      // Its last word is an offline status; once the server shows it, a restart's "online" is news.
      if (view) await until(`device ${view.deviceId} is offline`, async () => (await view!.show())?.online !== true);
    },
    async restart() {
      fleet.agent = spawn();
      await online();
    },
  };
  await online();
  return fleet;
}
