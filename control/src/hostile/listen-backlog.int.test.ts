import { execFile } from 'node:child_process';
import net from 'node:net';
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

// Behind a load balancer every device arrives from the balancer's address, so the bound on
// connections one address may hold open before their CONNACK must be a setting.
describe('KERNEX_MQTT_PENDING_PER_ADDRESS', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ KERNEX_MQTT_PENDING_PER_ADDRESS: '3' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('closes the connections from one address beyond the setting before their CONNACK, and counts them', async () => {
    const sockets = Array.from({ length: 5 }, () => net.connect(server.mqttPort, '127.0.0.1'));
    let closedCount = 0;
    const twoClosed = new Promise<void>((resolve) => {
      for (const s of sockets) {
        s.on('error', () => {});
        s.once('close', () => ++closedCount === 2 && resolve());
      }
    });
    try {
      // Two of the five are closed by the server; the other three wait for a CONNECT that never comes.
      await twoClosed;
      const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
      expect(metrics).toMatch(/^kernex_mqtt_refused_total\{reason="unauthenticated_limit"\} 2$/m);
      expect(sockets.filter((s) => s.destroyed)).toHaveLength(2);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
