import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDevice, register } from '../test-support/devices.js';
import { connectDevice } from '../test-support/mqtt.js';
import { startCliServer, type CliServer } from '../test-support/cli-server.js';
import { runCli } from '../test-support/run-cli.js';
import type { TestServer } from '../test-support/test-server.js';

describe('kernex tokens and devices, as a subprocess against a real server', () => {
  let cli: CliServer;
  let server: TestServer;
  let configHome: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    cli = await startCliServer();
    ({ server, configHome, env } = cli);
  });
  afterAll(async () => {
    await cli?.stop();
  });

  it('makes a token a device enrolls with, then lists, tags and decommissions the device', async () => {
    const created = await runCli(['tokens', 'create', '--uses', '1', '--expires', '1h', '--tag', 'lab', '--json'], env);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const token = JSON.parse(created.stdout) as { token: string };
    const d = await makeDevice();
    expect((await register(server.httpUrl, d, { enrollmentToken: token.token })).body.status).toBe('accepted');
    const pending = await makeDevice();
    await register(server.httpUrl, pending);

    const listed = JSON.parse((await runCli(['devices', 'ls', '--tag', 'lab', '--json'], env)).stdout) as Array<{ id: string; tags: string[] }>;
    expect(listed).toEqual([expect.objectContaining({ id: d.id, tags: ['lab'] })]);
    expect((await runCli(['devices', 'accept', pending.id], env)).stdout).toContain(`now accepted`);

    const tagged = JSON.parse((await runCli(['devices', 'tag', d.id, '--add', 'north', '--remove', 'lab', '--json'], env)).stdout) as { tags: string[] };
    expect(tagged.tags).toEqual(['north']);

    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, d);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    expect(await runCli(['devices', 'rm', d.id], env)).toMatchObject({ code: 0, stdout: `Decommissioned device ${d.id}.\n` });
    await closed;
    await client.endAsync(true);
    const shown = JSON.parse((await runCli(['devices', 'show', d.id, '--json'], env)).stdout) as { status: string };
    expect(shown.status).toBe('decommissioned');
  });
});
