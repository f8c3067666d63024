import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTcpProxy } from '@kernex/control/net/tcp-proxy';
import { percentile } from './stats.js';

/**
 * The design Kernex replaces: devices poll `GET /commands/next` every 60 s
 * over HTTP keep-alive, with a bearer JWT. Measured for real on loopback:
 * - idle bytes: payload bytes of a run of empty polls, per device-hour;
 * - command latency: `pollers` devices at random phases; one command is
 *   queued for all; per device, the time until its next poll fetches it.
 */
export interface PollingRun {
  idleBytesPerDeviceHour: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

const INTERVAL_MS = 60_000;

/** A bearer token the size of a device JWT signed with RSA-4096 (header.claims.512-byte signature). */
const JWT = `${'e'.repeat(36)}.${'c'.repeat(120)}.${'s'.repeat(683)}`;

function pollServer(pending: Set<string>): http.Server {
  return http.createServer((req, res) => {
    const id = /\/devices\/([^/]+)\/commands\/next/.exec(req.url ?? '')?.[1] ?? '';
    if (pending.delete(id)) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'cmd-1', type: 'deploy', executionId: 'e-1', issuedAt: new Date().toISOString() }));
    } else {
      res.writeHead(204);
      res.end();
    }
  });
}

function poll(agent: http.Agent, port: number, deviceId: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ agent, port, host: '127.0.0.1', path: `/api/v1/devices/${deviceId}/commands/next`, headers: { authorization: `Bearer ${JWT}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

export async function pollingRun(pollers: number): Promise<PollingRun> {
  const pending = new Set<string>();
  const server = pollServer(pending);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const proxy = await startTcpProxy((server.address() as AddressInfo).port);
  const agents: http.Agent[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    // Idle cost: 30 empty polls on one keep-alive connection, scaled to 60 polls an hour.
    const idleAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(idleAgent);
    for (let i = 0; i < 30; i++) await poll(idleAgent, proxy.port, 'idle-device');
    const idleBytesPerDeviceHour = ((proxy.bytes.up + proxy.bytes.down) / 30) * (3_600_000 / INTERVAL_MS);

    // Latency: pollers at random phases over one interval; the command is queued at a random moment.
    const queuedAt = performance.now() + Math.random() * INTERVAL_MS;
    const latencies: number[] = [];
    await new Promise<void>((done) => {
      for (let d = 0; d < pollers; d++) {
        const id = `dev-${d}`;
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        agents.push(agent);
        const tick = async (): Promise<void> => {
          const status = await poll(agent, proxy.port, id);
          if (status === 200) {
            latencies.push(performance.now() - queuedAt);
            if (latencies.length === pollers) done();
          } else timers.push(setTimeout(() => void tick(), INTERVAL_MS));
        };
        timers.push(setTimeout(() => void tick(), Math.random() * INTERVAL_MS));
      }
      timers.push(
        setTimeout(() => {
          for (let d = 0; d < pollers; d++) pending.add(`dev-${d}`);
        }, queuedAt - performance.now()),
      );
    });
    return { idleBytesPerDeviceHour, latencyP50Ms: percentile(latencies, 50), latencyP99Ms: percentile(latencies, 99) };
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const a of agents) a.destroy();
    await proxy.close();
    await new Promise((r) => server.close(r));
  }
}
