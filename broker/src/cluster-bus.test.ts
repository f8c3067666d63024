import { Aedes } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { createClusterEmitter, crossesNodes, type BrokerBus, type CrossingPacket } from './cluster-bus.js';

/** Two buses joined back to back, as Redis joins two nodes; every packet sent is kept. */
function pair(): [BrokerBus & { sent: CrossingPacket[] }, BrokerBus & { sent: CrossingPacket[] }] {
  const make = () => {
    const bus = { sent: [] as CrossingPacket[], listener: undefined as ((p: CrossingPacket) => void) | undefined, peer: undefined as any };
    return Object.assign(bus, {
      send(p: CrossingPacket) {
        bus.sent.push(p);
        setImmediate(() => bus.peer.listener?.(p));
      },
      onPacket(l: (p: CrossingPacket) => void) {
        bus.listener = l;
      },
    });
  };
  const a = make();
  const b = make();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

const brokers: Aedes[] = [];
afterEach(async () => {
  for (const b of brokers.splice(0)) await new Promise<void>((r) => b.close(() => r()));
});

async function node(bus: BrokerBus): Promise<Aedes> {
  const emitter = createClusterEmitter(bus);
  const aedes = await Aedes.createBroker({ mq: emitter.mq });
  emitter.attach(aedes);
  brokers.push(aedes);
  return aedes;
}

const publish = (aedes: Aedes, topic: string, qos: 0 | 1): Promise<void> =>
  new Promise((resolve, reject) => aedes.publish({ cmd: 'publish', topic, payload: Buffer.from('x'), qos, retain: false, dup: false }, (err) => (err ? reject(err) : resolve())));

describe('the cluster emitter', () => {
  it('crosses only commands and new-client and client-gone announcements', () => {
    expect(crossesNodes('kx/0123456789abcdef01234567/cmd')).toBe(true);
    expect(crossesNodes('$SYS/abc/new/clients')).toBe(true);
    expect(crossesNodes('$SYS/abc/disconnect/clients')).toBe(true);
    expect(crossesNodes('$SYS/abc/disconnect/clients/x')).toBe(false);
    expect(crossesNodes('kx/0123456789abcdef01234567/telemetry')).toBe(false);
    expect(crossesNodes('kx/0123456789abcdef01234567/events')).toBe(false);
    expect(crossesNodes('$SYS/abc/heartbeat')).toBe(false);
    expect(crossesNodes('kx/+/cmd')).toBe(false);
  });

  it('hands a command and a takeover announcement to the other node once, and never sends them back', async () => {
    const [busA, busB] = pair();
    const a = await node(busA);
    const b = await node(busB);
    const seen: string[] = [];
    const arrived = new Promise<void>((resolve) => {
      b.subscribe('kx/+/cmd', (packet, done) => {
        seen.push(packet.topic);
        done();
        resolve();
      }, () => {});
    });
    const announced = new Promise<void>((resolve) => b.subscribe(`$SYS/${a.id}/new/clients`, (_p, done) => (done(), resolve()), () => {}));
    busA.sent.length = 0; // Aedes' own start-up publishes
    await publish(a, 'kx/0123456789abcdef01234567/cmd', 1);
    await publish(a, `$SYS/${a.id}/new/clients`, 0);
    await Promise.all([arrived, announced]);
    // One more round trip on both buses: anything sent back would have been sent by now.
    await publish(a, 'kx/0123456789abcdef01234567/telemetry', 0);
    await new Promise((r) => setImmediate(r));
    expect(busA.sent.map((p) => p.topic)).toEqual(['kx/0123456789abcdef01234567/cmd', `$SYS/${a.id}/new/clients`]);
    expect(busB.sent.filter((p) => p.topic.startsWith('kx/') || p.topic.includes('/new/clients'))).toEqual([]);
    expect(seen).toEqual(['kx/0123456789abcdef01234567/cmd']);
  });
});
