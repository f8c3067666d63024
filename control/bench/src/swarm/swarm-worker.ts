import { parentPort } from 'node:worker_threads';
import { Backoff } from '@kernex/agent';
import mqtt, { type MqttClient } from 'mqtt';
import { now, type FromWorker, type SwarmClientSpec, type ToWorker } from './swarm-messages.js';

/**
 * A share of the swarm's MQTT.js clients, in a worker thread or in a child
 * process of its own (forked with an IPC channel). One Node thread of MQTT.js
 * clients saturates at a few thousand devices, so the swarm spreads clients
 * over several of these. Reports are batched every 50 ms.
 */
interface Port {
  postMessage(m: FromWorker): void;
  on(event: 'message', fn: (m: ToWorker) => void): void;
}
const port: Port = parentPort ?? {
  postMessage: (m) => process.send!(m),
  on: (event, fn) => process.on(event, fn as (m: unknown) => void),
};
if (!parentPort && !process.send) throw new Error('swarm-worker runs in a worker thread or a forked child process');

/** As the agent: a session that lived this long resets the backoff. */
const STABLE_MS = 30_000;

const clients: MqttClient[] = [];
let closing = false;
let connected: Array<{ i: number; sentAt: number; ackAt: number }> = [];
let subscribed: number[] = [];
let messages: Array<{ i: number; topic: string; at: number; bytes: number; tag?: string }> = [];
let lost: Array<{ i: number; at: number }> = [];
let reconnected: Array<{ i: number; at: number; url: string }> = [];

const send = (m: FromWorker): void => port.postMessage(m);
const flush = setInterval(() => {
  if (connected.length) send({ type: 'connected', items: connected.splice(0) });
  if (subscribed.length) send({ type: 'subscribed', items: subscribed.splice(0) });
  if (messages.length) send({ type: 'messages', items: messages.splice(0) });
  if (lost.length) send({ type: 'lost', items: lost.splice(0) });
  if (reconnected.length) send({ type: 'reconnected', items: reconnected.splice(0) });
}, 50);

/** A command's type, and for `deploy` the bundle id: lets a benchmark tell one deployment's commands from an earlier one's. */
function tagOf(payload: Buffer): string | undefined {
  if (payload[0] !== 0x7b) return undefined;
  try {
    const cmd = JSON.parse(payload.toString('utf8')) as { type?: unknown; bundle?: { id?: unknown } };
    return typeof cmd.type === 'string' ? (cmd.type === 'deploy' && typeof cmd.bundle?.id === 'string' ? `deploy:${cmd.bundle.id}` : cmd.type) : undefined;
  } catch {
    return undefined;
  }
}

interface FailoverState {
  urlIndex: number;
  backoff: Backoff;
  lostOnce: boolean;
}

function open(i: number, spec: SwarmClientSpec, url: string, msg: Extract<ToWorker, { type: 'start' }>, state?: FailoverState): void {
  const sentAt = now();
  const client = mqtt.connect(state ? spec.urls![state.urlIndex % spec.urls!.length]! : url, {
    clientId: spec.clientId,
    username: spec.username,
    password: spec.password,
    clean: msg.clean,
    keepalive: msg.keepalive,
    reconnectPeriod: 0,
    connectTimeout: 60_000,
  });
  clients[i] = client;
  let connectedAt = 0;
  client.once('connect', (connack) => {
    connectedAt = now();
    if (!state?.lostOnce) connected.push({ i, sentAt, ackAt: connectedAt });
    const ready = (): void => {
      if (state?.lostOnce) reconnected.push({ i, at: now(), url: spec.urls![state.urlIndex % spec.urls!.length]! });
      else subscribed.push(i);
    };
    if (!spec.subscribe || (connack.sessionPresent && state?.lostOnce)) return ready();
    client.subscribe(spec.subscribe, { qos: 1 }, (err) => {
      if (err) {
        if (!state) send({ type: 'failed', i, reason: `subscribe: ${err.message}` });
      } else ready();
    });
  });
  client.on('message', (topic, payload) => messages.push({ i, topic, at: now(), bytes: payload.length, tag: tagOf(payload) }));
  client.on('error', (err) => {
    if (!state) send({ type: 'failed', i, reason: err.message });
  });
  if (!state) return;
  client.once('close', () => {
    client.end(true);
    if (closing) return;
    const lived = connectedAt ? now() - connectedAt : 0;
    if (connectedAt) {
      lost.push({ i, at: now() });
      state.lostOnce = true;
    } else state.urlIndex++;
    if (lived >= STABLE_MS) state.backoff.reset();
    setTimeout(() => {
      if (!closing) open(i, spec, url, msg, state);
    }, state.backoff.next());
  });
}

port.postMessage({ type: 'ready' });

port.on('message', async (msg: ToWorker) => {
  if (msg.type === 'close') {
    closing = true;
    clearInterval(flush);
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    connected = [];
    subscribed = [];
    messages = [];
    send({ type: 'closed' });
    return;
  }
  const gapMs = msg.rate > 0 ? 1000 / msg.rate : 0;
  const t0 = now();
  for (const [i, spec] of msg.clients.entries()) {
    if (closing) return;
    if (gapMs > 0) {
      const due = t0 + i * gapMs;
      const wait = due - now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    } else if (i % 200 === 199) {
      await new Promise((r) => setImmediate(r)); // let CONNACKs in while connecting
    }
    const state = spec.urls?.length ? { urlIndex: 0, backoff: new Backoff({ baseMs: 1000, capMs: 60_000 }), lostOnce: false } : undefined;
    open(i, spec, spec.url ?? msg.url, msg, state);
  }
});
