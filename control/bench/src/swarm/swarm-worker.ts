import { parentPort } from 'node:worker_threads';
import mqtt, { type MqttClient } from 'mqtt';
import { now, type FromWorker, type ToWorker } from './swarm-messages.js';

/**
 * A worker thread holding a share of the swarm's MQTT.js clients. One Node
 * thread of MQTT.js clients saturates at a few thousand devices, so the swarm
 * spreads clients over several of these. Reports are batched every 50 ms.
 */
const port = parentPort!;
const clients: MqttClient[] = [];
let connected: Array<{ i: number; sentAt: number; ackAt: number }> = [];
let subscribed: number[] = [];
let messages: Array<{ i: number; topic: string; at: number; bytes: number }> = [];

const send = (m: FromWorker): void => port.postMessage(m);
const flush = setInterval(() => {
  if (connected.length) send({ type: 'connected', items: connected.splice(0) });
  if (subscribed.length) send({ type: 'subscribed', items: subscribed.splice(0) });
  if (messages.length) send({ type: 'messages', items: messages.splice(0) });
}, 50);

port.on('message', async (msg: ToWorker) => {
  if (msg.type === 'close') {
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
    if (gapMs > 0) {
      const due = t0 + i * gapMs;
      const wait = due - now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    } else if (i % 200 === 199) {
      await new Promise((r) => setImmediate(r)); // let CONNACKs in while connecting
    }
    const sentAt = now();
    const client = mqtt.connect(msg.url, {
      clientId: spec.clientId,
      username: spec.username,
      password: spec.password,
      clean: msg.clean,
      keepalive: msg.keepalive,
      reconnectPeriod: 0,
      connectTimeout: 60_000,
    });
    clients.push(client);
    client.once('connect', () => {
      connected.push({ i, sentAt, ackAt: now() });
      if (spec.subscribe) {
        client.subscribe(spec.subscribe, { qos: 1 }, (err) => {
          if (err) send({ type: 'failed', i, reason: `subscribe: ${err.message}` });
          else subscribed.push(i);
        });
      }
    });
    client.on('message', (topic, payload) => messages.push({ i, topic, at: now(), bytes: payload.length }));
    client.once('error', (err) => send({ type: 'failed', i, reason: err.message }));
  }
});
