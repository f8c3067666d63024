import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deviceIdFromPublicKey } from '@kernex/shared';
import { until } from './test-support/fleet.js';
import { spawnAgent, type AgentProcess } from './test-support/spawn-agent.js';
import { startTestServer, type TestServer } from './test-support/test-server.js';

/** The agent against a server with HTTPS and MQTTS from its own CA (KERNEX_CA_FILE pins it). */
describe('kernex-agent over TLS with a pinned CA', () => {
  let server: TestServer;
  let dir: string;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_MQTTS_PORT: '0', KERNEX_HTTPS: 'true' });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-agent-tls-'));
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.kill('SIGKILL')));
  });
  afterAll(async () => {
    await server?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const start = (env: Record<string, string>): AgentProcess => {
    const a = spawnAgent({ KERNEX_SERVER: server.httpUrl, KERNEX_KEY_TYPE: 'p256', ...env });
    agents.push(a);
    return a;
  };

  it('registers over HTTPS and connects over MQTTS when given the CA', async () => {
    expect(server.httpUrl).toMatch(/^https:/);
    const { token } = await server.services.enrollmentTokens.create({ uses: 1, expiresInS: 600 });
    const encrypted = new Map<string, boolean>();
    // The broker's stream wraps the TLS socket (connection edge): look through it.
    type Conn = { encrypted?: boolean; socket?: { encrypted?: boolean } };
    server.broker.aedes.on('client', (client) => {
      const conn = client.conn as unknown as Conn;
      encrypted.set(client.id, (conn.encrypted ?? conn.socket?.encrypted) === true);
    });
    const stateDir = path.join(dir, 'a');
    start({ KERNEX_STATE_DIR: stateDir, KERNEX_ENROLL_TOKEN: token, KERNEX_CA_FILE: server.caFile! });
    const keyFile = path.join(stateDir, 'device.key');
    await until('the agent has made its key', () => fs.access(keyFile).then(() => true, () => false));
    const id = deviceIdFromPublicKey(createPrivateKey(await fs.readFile(keyFile, 'utf8')));
    // Read in-process: the test's own fetch does not trust the server-made CA.
    await expect.poll(() => server.services.devices.get(id).catch(() => undefined), { timeout: 30_000 }).toMatchObject({ status: 'accepted', online: true });
    // Its MQTT session came over TLS (the MQTTS listener), not the plain port.
    expect(encrypted.get(id)).toBe(true);
  });

  it('does not trust the server without the CA, and keeps trying', async () => {
    // The HTTPS server sees the agent drop the handshake (Node's client hangs up on a
    // certificate it cannot verify, without an alert).
    let dropped = 0;
    const twice = new Promise<void>((resolve) => server.app.server.on('tlsClientError', () => ++dropped === 2 && resolve()));
    const stateDir = path.join(dir, 'b');
    const a = start({ KERNEX_STATE_DIR: stateDir, KERNEX_RECONNECT_MAX_S: '1' });
    // Twice: it tried again after the first refusal.
    await twice;
    // It made its key but never got through to register, and it keeps running.
    const id = deviceIdFromPublicKey(createPrivateKey(await fs.readFile(path.join(stateDir, 'device.key'), 'utf8')));
    await expect(server.services.devices.get(id)).rejects.toThrow();
    expect(a.proc.exitCode).toBeNull();
  });
});
