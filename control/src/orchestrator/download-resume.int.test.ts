import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api } from '../test-support/devices.js';
import { enrollmentToken, startAgent, type FleetAgent } from '../test-support/fleet.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';
import { freePort } from '../net/free-port.js';
import { flakyLink } from '../test-support/flaky-link.js';

describe('a bundle download cut half-way', () => {
  let server: TestServer;
  let link: Awaited<ReturnType<typeof flakyLink>>;
  let agent: FleetAgent;

  beforeAll(async () => {
    const httpPort = await freePort();
    const size = 4 * 1024 * 1024;
    link = await flakyLink(httpPort, size / 2);
    // Devices are told blob URLs through the flaky link; everything else goes direct.
    server = await startTestServer({ KERNEX_HTTP_PORT: String(httpPort), KERNEX_PUBLIC_URL: `http://127.0.0.1:${link.port}`, KERNEX_ORCHESTRATOR_TICK_MS: '200' });
    agent = await startAgent(server.httpUrl, await enrollmentToken(server.httpUrl, server.adminHeaders, 1));
  });
  afterAll(async () => {
    await agent?.stop();
    await link?.close();
    await server?.stop();
    if (agent) await fs.rm(agent.stateDir, { recursive: true, force: true });
  });

  it('resumes with a Range request and installs, without fetching the same bytes twice', async () => {
    const archive = await makeBundle({ version: '1.0.0', padding: 4 * 1024 * 1024 });
    const up = await fetch(`${server.httpUrl}/api/v1/bundles`, { method: 'POST', body: archive, headers: { ...server.adminHeaders, 'content-type': 'application/gzip' } });
    const bundle = (await up.json()) as { id: string; sha256: string };
    const created = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, { bundleId: bundle.id, target: { deviceIds: [agent.deviceId] } });
    expect(created.status).toBe(201);

    await expect.poll(async () => (await api('GET', `${server.httpUrl}/api/v1/deployments/${created.body.id}`, server.adminHeaders)).body.status, { timeout: 30_000 }).toBe('completed');
    const [execution] = (await api('GET', `${server.httpUrl}/api/v1/deployments/${created.body.id}/executions`, server.adminHeaders)).body.items;
    expect(execution.state).toBe('succeeded');
    expect(await agent.current('app')).toBe('1.0.0');

    expect(link.heads).toHaveLength(2);
    expect(link.heads[0]).not.toMatch(/\r\nrange:/i);
    const resumedAt = Number(/\r\nrange: bytes=(\d+)-/i.exec(link.heads[1]!)?.[1]);
    // It asks from what it kept: more than nothing, no more than the link carried before it broke.
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(link.heads[1]).toMatch(new RegExp(`\\r\\nif-range: "${bundle.sha256}"`, 'i'));
    // Bytes carried back: the archive once, plus two answers' heads and what was still in
    // the socket buffers when the link broke (never on the agent's disk, so asked again):
    // far less than a re-download of the 2 MiB already held.
    expect(link.down() - archive.length).toBeLessThan(128 * 1024);
  });
});
