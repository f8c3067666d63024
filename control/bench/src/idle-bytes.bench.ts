import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startTcpProxy, type TcpProxy } from '@kernex/control/net/tcp-proxy';
import { startKernexServer, type KernexProcess } from './kernex-process.js';

/** Bytes an idle agent costs, measured through a byte-counting loopback proxy. */
export interface IdleBytesRun {
  /** CONNECT, CONNACK, SUBSCRIBE/SUBACK (first time), online status, first telemetry. */
  sessionSetupBytes: number;
  /** One telemetry PUBLISH (QoS 0) with the agent's real sample. */
  telemetryBytes: number;
  /** One PINGREQ + PINGRESP. */
  keepaliveBytes: number;
  /** MQTT bytes (TCP payload, both directions) per idle device-hour at the given periods. */
  bytesPerHour: number;
  /** The same with TCP/IPv4 headers (52 bytes a segment, one segment per packet plus one bare ACK per exchange). */
  bytesPerHourWithHeaders: number;
}

const AGENT_BIN = fileURLToPath(new URL('../../../agent/bin/kernex-agent.js', import.meta.url));
/** IPv4 (20) + TCP (20) + timestamp option (12). */
const SEGMENT_OVERHEAD = 52;

interface Agent {
  waitFor(msg: string): Promise<void>;
  stop(): Promise<void>;
}

function runAgent(env: Record<string, string>): Agent {
  const proc = spawn(process.execPath, [AGENT_BIN], { env: { ...process.env, LOG_LEVEL: 'debug', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const seen: string[] = [];
  const waiters: Array<() => void> = [];
  readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      seen.push((JSON.parse(line) as { msg: string }).msg);
    } catch {
      return;
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    waitFor(msg) {
      const count = seen.filter((m) => m === msg).length;
      return new Promise((resolve) => {
        const check = (): void => {
          if (seen.filter((m) => m === msg).length > count) resolve();
          else waiters.push(check);
        };
        waiters.push(check);
      });
    },
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

const total = (p: TcpProxy): number => p.bytes.up + p.bytes.down;

/**
 * Runs a real `kernex-agent` through a counting proxy, over a shortened
 * window, and scales to an hour at the default periods: telemetry every
 * `telemetryS`, a keepalive exchange every `keepaliveS` when nothing else is
 * sent, and a token-renewal reconnect (session setup) twice a day.
 */
export async function idleBytesRun(telemetryS: number, keepaliveS: number): Promise<IdleBytesRun> {
  const server: KernexProcess = await startKernexServer();
  const proxy = await startTcpProxy(server.mqttPort);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-idle-'));
  try {
    const res = await fetch(`${server.httpUrl}/api/v1/enrollment-tokens`, { method: 'POST', headers: server.adminHeaders, body: JSON.stringify({ uses: 2, expiresInS: 600 }) });
    const { token } = (await res.json()) as { token: string };
    const base = { KERNEX_SERVER: server.httpUrl, KERNEX_ENROLL_TOKEN: token, KERNEX_MQTT_URL: `mqtt://127.0.0.1:${proxy.port}` };

    // Phase 1, telemetry every second, long keepalive: session setup, then per-message bytes.
    const a = runAgent({ ...base, KERNEX_STATE_DIR: path.join(dir, 'a'), KERNEX_TELEMETRY_S: '1', KERNEX_KEEPALIVE_S: '3600' });
    await a.waitFor('telemetry sent');
    // Let the set-up exchange (online status and its PUBACK) finish before the per-message window.
    await new Promise((r) => setTimeout(r, 300));
    const setup = total(proxy);
    const n = 4;
    for (let i = 0; i < n; i++) await a.waitFor('telemetry sent');
    await new Promise((r) => setTimeout(r, 300));
    const telemetryBytes = (total(proxy) - setup) / n;
    await a.stop();

    // Phase 2, telemetry never, shortest keepalive: bytes of one PINGREQ/PINGRESP.
    const before = total(proxy);
    const b = runAgent({ ...base, KERNEX_STATE_DIR: path.join(dir, 'b'), KERNEX_TELEMETRY_S: '86400', KERNEX_KEEPALIVE_S: '10' });
    await b.waitFor('telemetry sent');
    await new Promise((r) => setTimeout(r, 200));
    const afterSetup = total(proxy);
    await new Promise((r) => setTimeout(r, 12_000));
    const keepaliveBytes = total(proxy) - afterSetup;
    await b.stop();
    const sessionSetupBytes = afterSetup - before;

    const telemetryPerHour = 3600 / telemetryS;
    // MQTT.js sends PINGREQ only after a keepalive period with nothing sent (reschedulePings):
    // with telemetry every 900 s and keepalive 300 s, two pings between samples.
    const pingsPerHour = telemetryPerHour * Math.max(0, Math.ceil(telemetryS / keepaliveS) - 1);
    const renewalsPerHour = 2 / 24;
    const bytesPerHour = telemetryPerHour * telemetryBytes + pingsPerHour * keepaliveBytes + renewalsPerHour * sessionSetupBytes;
    const segments = telemetryPerHour * 2 + pingsPerHour * 3 + renewalsPerHour * 12;
    return { sessionSetupBytes, telemetryBytes, keepaliveBytes, bytesPerHour, bytesPerHourWithHeaders: bytesPerHour + segments * SEGMENT_OVERHEAD };
  } finally {
    await proxy.close();
    await server.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
