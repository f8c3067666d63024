import fs from 'node:fs/promises';
import https from 'node:https';
import { cmdTopic, type Command } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { makeDevice, type TestDevice } from '../test-support/devices.js';
import { startAgent, type FleetAgent } from '../test-support/fleet.js';
import { connectDevice } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

/**
 * With HTTPS on, every URL the server tells a device carries `https` (DESIGN
 * §7), and the agent downloads over it trusting KERNEX_CA_FILE, the server's
 * own CA, on its download path as on registration.
 */
describe('bundle downloads with TLS on', () => {
  let server: TestServer;
  let agent: FleetAgent;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_HTTPS: 'true', KERNEX_MQTTS_PORT: '0', KERNEX_ORCHESTRATOR_TICK_MS: '200' });
  });
  afterAll(async () => {
    await agent?.stop().catch(() => {});
    await server?.stop();
    if (agent) await fs.rm(agent.stateDir, { recursive: true, force: true });
  });

  it('tells devices an https:// bundle URL, and a real agent with KERNEX_CA_FILE downloads and installs it', { timeout: 150_000 }, async () => {
    expect(server.httpUrl).toMatch(/^https:/);
    const ca = await fs.readFile(server.caFile!);
    // Node's fetch takes no CA: the test's own calls use node:https with the server's CA.
    const http = pinned(ca);
    const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<any> => {
      const res = await http.text(`${server.httpUrl}${path}`, {
        method,
        headers: { ...server.adminHeaders, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: res.text ? JSON.parse(res.text) : undefined };
    };
    const { token } = await server.services.enrollmentTokens.create({ uses: 2, expiresInS: 600 });
    agent = await startAgent(server.httpUrl, token, { KERNEX_CA_FILE: server.caFile! });

    // A second device played by the test reads the deploy command as sent.
    const watcher = await makeDevice();
    expect(await registerOver(http, server.httpUrl, watcher, token)).toBe('accepted');
    const client = await connectDevice(`mqtts://127.0.0.1:${server.mqttsPort}`, watcher, { ca });
    try {
      const command = new Promise<Command>((resolve) => client.once('message', (_t, payload) => resolve(JSON.parse(payload.toString()) as Command)));
      await client.subscribeAsync(cmdTopic(watcher.id), { qos: 1 });

      const archive = await makeBundle({ version: '1.0.0' });
      const uploaded = await http.text(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', headers: { ...server.adminHeaders, 'content-type': 'application/gzip' }, body: archive });
      expect(uploaded.status).toBe(201);
      const bundleId = (JSON.parse(uploaded.text) as { id: string }).id;
      const created = await call('POST', '/api/v1/deployments', { bundleId, target: { deviceIds: [agent.deviceId, watcher.id] } });
      expect(created.status).toBe(201);

      const sent = await command;
      expect(sent.type).toBe('deploy');
      expect(sent.type === 'deploy' && sent.bundle.url).toBe(`https://127.0.0.1:${server.httpPort}/api/v1/bundles/${bundleId}/blob`);

      const agentState = async (): Promise<string | undefined> =>
        ((await call('GET', `/api/v1/deployments/${created.body.id}/executions`)).body.items as Array<{ deviceId: string; state: string; error?: string }>).find((e) => e.deviceId === agent.deviceId)?.state;
      await expect.poll(agentState, { timeout: 60_000 }).toBe('succeeded');
      expect(await agent.current('app')).toBe('1.0.0');
    } finally {
      await client.endAsync(true);
    }
  });
});

/** A request through node:https trusting only `ca`; answers status and body text. */
function pinned(ca: Buffer) {
  return {
    text(url: string, o: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<{ status: number; text: string }> {
      return new Promise((resolve, reject) => {
        const req = https.request(url, { method: o.method ?? 'GET', headers: o.headers, ca }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(o.body);
      });
    },
  };
}

/** Registers a test device over HTTPS with the pinned CA; answers its status. */
async function registerOver(http: ReturnType<typeof pinned>, httpUrl: string, device: TestDevice, token: string): Promise<string> {
  const res = await http.text(`${httpUrl}/api/v1/devices/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ publicKey: device.publicKeyPem, proof: await device.jwt('kernex-register'), enrollmentToken: token }),
  });
  return (JSON.parse(res.text) as { status: string }).status;
}
