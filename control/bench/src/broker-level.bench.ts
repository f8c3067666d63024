import mqtt from 'mqtt';
import { percentile } from './stats.js';
import { Swarm } from './swarm/swarm.js';
import type { BrokerTarget } from './targets.js';

/** Figures of one broker-level run against one target. */
export interface BrokerRun {
  connectsPerS: number;
  fanoutP50Ms: number;
  fanoutP99Ms: number;
  /** Growth of the broker's RSS per subscribed connection, after a full GC on both ends (Mosquitto: as it is). */
  bytesPerConnection: number;
  /** The same growth read at once after the storm, with the storm's garbage (the figure this row gave before 2026-12-01). */
  bytesPerConnectionAtOnce: number;
  /** Growth of the live JavaScript heap per connection (Node.js targets only; NaN for Mosquitto). */
  heapPerConnection: number;
}

/** Clients connected and closed before the baseline, so one-time costs (code, caches) are not counted per connection. */
const WARM_UP_CLIENTS = 20;

/**
 * Connect storm, fan-out and memory per connection against one broker with
 * authentication off: N clients connect as fast as the swarm can send
 * (rate = N / time from first CONNECT to last CONNACK), each subscribes to its
 * own `kx/{id}/cmd`, then one publisher sends one QoS 1 message to every
 * device topic and we take, per device, the time from the first PUBLISH to
 * its arrival. Memory: growth of the broker process's RSS per connected client,
 * from a baseline taken after a few clients came and went (one-time costs:
 * mqtt-packet's 65,536 cached message-id buffers, ~6 MB, and compiled code),
 * both ends read after a full garbage collection for a Node.js broker.
 */
export async function brokerLevelRun(target: BrokerTarget, devices: number, workers: number): Promise<BrokerRun> {
  const warm = Swarm.start({ url: target.url, clients: Array.from({ length: WARM_UP_CLIENTS }, (_, i) => ({ clientId: `warm-${i}`, subscribe: `kx/warm-${i}/cmd` })), workers: 1 });
  try {
    await warm.waitFor((s) => s.subscribed + s.failures.length >= WARM_UP_CLIENTS, 60_000, 'warm-up subscriptions');
  } finally {
    await warm.close();
  }
  const settled = async (): Promise<{ rss: number; heapUsed: number }> => (target.settled ? target.settled() : { rss: await target.rss(), heapUsed: NaN });
  const before = await settled();
  const clients = Array.from({ length: devices }, (_, i) => ({ clientId: `bench-${i}`, subscribe: `kx/bench-${i}/cmd` }));
  const swarm = Swarm.start({ url: target.url, clients, workers });
  try {
    await swarm.waitFor((s) => s.subscribed + s.failures.length >= devices, 180_000, 'subscriptions');
    if (swarm.failures.length) throw new Error(`${swarm.failures.length} clients failed: ${swarm.failures[0]!.reason}`);
    const first = Math.min(...swarm.connectTimes.map((c) => c.sentAt));
    const last = Math.max(...swarm.connectTimes.map((c) => c.ackAt));
    const connectsPerS = devices / ((last - first) / 1000);
    const bytesPerConnectionAtOnce = ((await target.rss()) - before.rss) / devices;
    const after = await settled();
    const bytesPerConnection = (after.rss - before.rss) / devices;
    const heapPerConnection = (after.heapUsed - before.heapUsed) / devices;

    const arrivals: number[] = [];
    swarm.on('receipt', (r: { at: number }) => arrivals.push(r.at));
    const publisher = await mqtt.connectAsync(target.url, { clientId: 'bench-publisher', reconnectPeriod: 0 });
    const payload = JSON.stringify({ id: 'x', type: 'cancel', executionId: 'e', issuedAt: new Date().toISOString() });
    const start = performance.timeOrigin + performance.now();
    await Promise.all(clients.map((c) => publisher.publishAsync(`kx/${c.clientId}/cmd`, payload, { qos: 1 })));
    await swarm.waitFor(() => arrivals.length >= devices, 120_000, 'fan-out messages');
    await publisher.endAsync();
    const latencies = arrivals.map((a) => a - start);
    return { connectsPerS, fanoutP50Ms: percentile(latencies, 50), fanoutP99Ms: percentile(latencies, 99), bytesPerConnection, bytesPerConnectionAtOnce, heapPerConnection };
  } finally {
    await swarm.close();
  }
}
