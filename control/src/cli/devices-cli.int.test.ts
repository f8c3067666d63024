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

  it('shows a device telemetry newest first, and only since --since', async () => {
    const d = await makeDevice();
    await register(server.httpUrl, d);
    const now = Date.now();
    const ingest = server.services.telemetryIngest;
    ingest.add(d.id, { cpu: 1, mem: [100, 1000], up: 10, v: '0.1.0' }, new Date(now - 3 * 3_600_000));
    ingest.add(d.id, { cpu: 2, mem: [200, 1000], up: 20, v: '0.1.0' }, new Date(now - 30 * 60_000));
    ingest.add(d.id, { cpu: 3, mem: [300, 1000], up: 30, v: '0.1.0' }, new Date(now - 60_000));
    await ingest.flush();

    const all = await runCli(['devices', 'telemetry', d.id, '--json'], env);
    expect(all).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(all.stdout) as Array<{ telemetry: { cpu: number } }>).map((s) => s.telemetry.cpu)).toEqual([3, 2, 1]);

    const recent = await runCli(['devices', 'telemetry', d.id, '--since', '1h'], env);
    expect(recent.code).toBe(0);
    const lines = recent.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^AT\s+CPU%\s+MEM\s+DISK\s+LOAD\s+UP\(S\)\s+AGENT$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/)[1])).toEqual(['3', '2']);
    expect(lines[1]).toContain('300/1000');

    const newest = await runCli(['devices', 'telemetry', d.id, '--limit', '1', '--json'], env);
    expect((JSON.parse(newest.stdout) as Array<{ telemetry: { cpu: number } }>).map((s) => s.telemetry.cpu)).toEqual([3]);

    const bad = await runCli(['devices', 'telemetry', d.id, '--since', 'yesterday'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--since');
  });
});
