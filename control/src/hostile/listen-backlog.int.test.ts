import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

const run = promisify(execFile);

/** The accept queue the kernel gives a listening socket on 127.0.0.1:`port`: `ss` shows it as the Send-Q of a LISTEN socket. */
async function backlogOf(port: number): Promise<number> {
  const { stdout } = await run('ss', ['-Hltn', `sport = :${port}`]);
  const fields = stdout.trim().split(/\s+/);
  return Number(fields[2]);
}

// A whole fleet reconnects at once after a restart or a node's death: with Node's default
// backlog of 511 the kernel drops the SYNs beyond it, and each device waits a second or more
// for its SYN to be resent while the server idles (the cluster benchmark's storm, issue 12).
describe('listening for a fleet that connects at once', () => {
  let server: TestServer;
  let expected: number;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_WS_PORT: '0' });
    const somaxconn = Number((await readFile('/proc/sys/net/core/somaxconn', 'utf8')).trim());
    expected = Math.min(4096, somaxconn);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('queues up to 4096 connections (or the kernel cap) on MQTT, MQTT over WebSocket and HTTP', async () => {
    expect(await backlogOf(server.mqttPort)).toBe(expected);
    expect(await backlogOf(server.wsPort!)).toBe(expected);
    expect(await backlogOf(server.httpPort)).toBe(expected);
  });
});
