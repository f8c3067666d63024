import mqtt from 'mqtt';
import { percentile } from './stats.js';
import { Swarm } from './swarm/swarm.js';
import type { BrokerTarget } from './targets.js';

/** Figures of one broker-level run against one target. */
export interface BrokerRun {
  connectsPerS: number;
  fanoutP50Ms: number;
  fanoutP99Ms: number;
  bytesPerConnection: number;
}

/**
 * Connect storm, fan-out and memory per connection against one broker with
 * authentication off: N clients connect as fast as the swarm can send
 * (rate = N / time from first CONNECT to last CONNACK), each subscribes to its
 * own `kx/{id}/cmd`, then one publisher sends one QoS 1 message to every
 * device topic and we take, per device, the time from the first PUBLISH to
 * its arrival. Memory: RSS growth of the broker process per connected client.
 */
export async function brokerLevelRun(target: BrokerTarget, devices: number, workers: number): Promise<BrokerRun> {
  const rssBefore = await target.rss();
  const clients = Array.from({ length: devices }, (_, i) => ({ clientId: `bench-${i}`, subscribe: `kx/bench-${i}/cmd` }));
  const swarm = Swarm.start({ url: target.url, clients, workers });
  try {
    await swarm.waitFor((s) => s.subscribed + s.failures.length >= devices, 180_000, 'subscriptions');
    if (swarm.failures.length) throw new Error(`${swarm.failures.length} clients failed: ${swarm.failures[0]!.reason}`);
    const first = Math.min(...swarm.connectTimes.map((c) => c.sentAt));
    const last = Math.max(...swarm.connectTimes.map((c) => c.ackAt));
    const connectsPerS = devices / ((last - first) / 1000);
    const bytesPerConnection = ((await target.rss()) - rssBefore) / devices;

    const arrivals: number[] = [];
    swarm.on('receipt', (r: { at: number }) => arrivals.push(r.at));
    const publisher = await mqtt.connectAsync(target.url, { clientId: 'bench-publisher', reconnectPeriod: 0 });
    const payload = JSON.stringify({ id: 'x', type: 'cancel', executionId: 'e', issuedAt: new Date().toISOString() });
    const start = performance.timeOrigin + performance.now();
    await Promise.all(clients.map((c) => publisher.publishAsync(`kx/${c.clientId}/cmd`, payload, { qos: 1 })));
    await swarm.waitFor(() => arrivals.length >= devices, 120_000, 'fan-out messages');
    await publisher.endAsync();
    const latencies = arrivals.map((a) => a - start);
    return { connectsPerS, fanoutP50Ms: percentile(latencies, 50), fanoutP99Ms: percentile(latencies, 99), bytesPerConnection };
  } finally {
    await swarm.close();
  }
}
