import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

const KERNEX_BIN = fileURLToPath(new URL('../../bin/kernex.js', import.meta.url));

let server: TestServer | undefined;
let keyCache: string | undefined;
afterEach(async () => {
  await server?.stop();
  if (keyCache) await fs.rm(keyCache, { recursive: true, force: true });
});

it('kernex sim runs the agent package simulator, and SIGTERM disconnects every device and exits 0 with a JSON summary', async () => {
  server = await startTestServer();
  keyCache = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-sim-cli-'));
  const child = spawn(process.execPath, [KERNEX_BIN, 'sim', '--devices', '6', '--workers', '2', '--summary-s', '1', '--json', '--key-cache', keyCache], {
    env: { ...process.env, KERNEX_URL: server.httpUrl, KERNEX_API_KEY: server.adminKey },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  let stdout = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  // The progress line on stderr says when the whole fleet is connected.
  for await (const line of readline.createInterface({ input: child.stderr })) {
    if (line.includes('connected 6/6')) break;
  }
  child.stderr.resume();
  const onlineCount = async (): Promise<number> => {
    const res = await fetch(`${server!.httpUrl}/api/v1/devices?online=true`, { headers: server!.adminHeaders });
    return ((await res.json()) as { items: unknown[] }).items.length;
  };
  await expect.poll(onlineCount, { timeout: 10_000 }).toBe(6);

  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  const summary = JSON.parse(stdout) as { devices: number; everConnected: number; connected: number };
  expect(summary).toMatchObject({ devices: 6, everConnected: 6, connected: 6 });
  await expect.poll(onlineCount, { timeout: 10_000 }).toBe(0);
});
