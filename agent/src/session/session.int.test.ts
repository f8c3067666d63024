import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cmdTopic, statusTopic } from '@kernex/shared';
import { Backoff } from './backoff.js';
import { MqttSession, type SessionToken } from './session.js';

/** Debian's broker (package `mosquitto`, which `.ci/run` installs): /usr/sbin is not on every PATH. */
async function mosquittoBinary(): Promise<string> {
  const dirs = ['/usr/sbin', ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean)];
  for (const dir of dirs) {
    const file = path.join(dir, 'mosquitto');
    if (await fs.access(file, fs.constants.X_OK).then(() => true, () => false)) return file;
  }
  throw new Error(`the mosquitto broker is not installed (looked in ${dirs.join(', ')}): install Debian's package 'mosquitto' (.ci/run does)`);
}

/** Resolves once 127.0.0.1:port accepts a TCP connection, trying again every 50 ms while `alive()`. */
async function listening(port: number, alive: () => boolean): Promise<void> {
  while (alive()) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('mosquitto ended before it listened');
}

/**
 * MqttSession against a real, independent MQTT broker (Debian's Mosquitto,
 * anonymous, loopback): the MQTT behaviour of the session alone, without the
 * Kernex server. The server-side view is in control's device-agent tests.
 */
describe('MqttSession against Mosquitto', () => {
  let broker: ChildProcess;
  let port: number;
  let dir: string;
  let observer: MqttClient;
  const statuses: Array<{ deviceId: string; state: string; retain: boolean }> = [];
  const sessions: MqttSession[] = [];

  beforeAll(async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kx-session-'));
    const conf = path.join(dir, 'mosquitto.conf');
    await fs.writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type information', ''].join('\n'));
    broker = spawn(await mosquittoBinary(), ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let brokerLog = '';
    broker.stderr!.setEncoding('utf8').on('data', (chunk: string) => (brokerLog += chunk));
    const ended = new Promise<never>((_, reject) => {
      broker.once('error', (err) => reject(new Error(`cannot start mosquitto: ${err.message}`)));
      broker.once('exit', (code) => reject(new Error(`mosquitto exited with ${code}: ${brokerLog}`)));
    });
    ended.catch(() => {});
    // Ready once its listener accepts a TCP connection (not a log line).
    await Promise.race([ended, listening(port, () => broker.exitCode === null && broker.signalCode === null)]);
    observer = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'observer', reconnectPeriod: 0 });
    observer.on('message', (topic, payload, packet) => {
      statuses.push({ deviceId: topic.split('/')[1]!, state: (JSON.parse(payload.toString()) as { state: string }).state, retain: packet.retain });
    });
    await observer.subscribeAsync('kx/+/status', { qos: 1 });
  });
  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((s) => s.stop()));
  });
  afterAll(async () => {
    await observer?.endAsync();
    broker?.kill('SIGTERM');
    if (broker) await once(broker, 'exit');
    await fs.rm(dir, { recursive: true, force: true });
  });

  const session = (deviceId: string, tokens: SessionToken[], onMessage?: (p: Buffer) => Promise<void>): { s: MqttSession; issued: SessionToken[] } => {
    const issued: SessionToken[] = [];
    const s = new MqttSession({
      deviceId,
      urls: () => [`mqtt://127.0.0.1:${port}`],
      token: async () => {
        const t = tokens.shift() ?? { token: `t-${issued.length}`, expiresAtMs: Date.now() + 3_600_000 };
        issued.push(t);
        return t;
      },
      keepaliveS: 60,
      onlineStatus: { v: 'test' },
      log: pino({ level: 'silent' }),
      backoff: new Backoff({ baseMs: 10, capMs: 50 }),
      onMessage,
    });
    sessions.push(s);
    return { s, issued };
  };
  const publishCmd = (deviceId: string, body: object): Promise<unknown> => observer.publishAsync(cmdTopic(deviceId), JSON.stringify(body), { qos: 1 });

  it('announces itself online (retained) and hands each command to the handler', async () => {
    const received: unknown[] = [];
    const { s } = session('dev-a', [], async (p) => void received.push(JSON.parse(p.toString())));
    s.start();
    const [sessionPresent] = (await once(s, 'connected')) as [boolean];
    expect(sessionPresent).toBe(false);
    await expect.poll(() => statuses.filter((x) => x.deviceId === 'dev-a')).toEqual([{ deviceId: 'dev-a', state: 'online', retain: false }]);
    await publishCmd('dev-a', { id: 'c1' });
    await expect.poll(() => received).toEqual([{ id: 'c1' }]);
  });

  it('reconnects with a fresh token before the current one expires, keeping its session and sending no will', async () => {
    const received: unknown[] = [];
    const { s, issued } = session('dev-b', [{ token: 'short', expiresAtMs: Date.now() + 1500 }], async (p) => void received.push(JSON.parse(p.toString())));
    s.start();
    await once(s, 'connected');
    const [sessionPresent] = (await once(s, 'connected')) as [boolean];
    expect(issued.map((t) => t.token)).toEqual(['short', 't-1']);
    // The broker kept the subscription (clean: false), so commands still arrive.
    expect(sessionPresent).toBe(true);
    await publishCmd('dev-b', { id: 'c2' });
    await expect.poll(() => received).toEqual([{ id: 'c2' }]);
    expect(statuses.filter((x) => x.deviceId === 'dev-b').map((x) => x.state)).toEqual(['online', 'online']);
  });

  it('leaves a retained offline status when stopped', async () => {
    const { s } = session('dev-c', []);
    s.start();
    await once(s, 'connected');
    await s.stop();
    await expect.poll(() => statuses.filter((x) => x.deviceId === 'dev-c').map((x) => x.state)).toEqual(['online', 'offline']);
    // A newcomer sees the retained offline.
    const late = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'late', reconnectPeriod: 0 });
    try {
      const got = new Promise<[Buffer, { retain: boolean }]>((resolve) => late.once('message', (_topic, payload, packet) => resolve([payload, packet])));
      await late.subscribeAsync(statusTopic('dev-c'), { qos: 1 });
      const [payload, packet] = await got;
      expect(JSON.parse(payload.toString())).toEqual({ state: 'offline' });
      expect(packet.retain).toBe(true);
    } finally {
      await late.endAsync();
    }
  });

  it('keeps retrying with backoff while the broker is unreachable, and rejects publishes meanwhile', async () => {
    let attempts = 0;
    const s = new MqttSession({
      deviceId: 'dev-d',
      urls: () => ['mqtt://127.0.0.1:1'],
      token: async () => {
        attempts++;
        return { token: 't', expiresAtMs: Date.now() + 3_600_000 };
      },
      keepaliveS: 60,
      log: pino({ level: 'silent' }),
      backoff: new Backoff({ baseMs: 10, capMs: 20 }),
    });
    sessions.push(s);
    s.start();
    await expect.poll(() => attempts).toBeGreaterThanOrEqual(3);
    expect(s.connected).toBe(false);
    await expect(s.publish('kx/dev-d/events', '{}')).rejects.toThrow('not connected');
  });
});
