import type { CrossingPacket } from '@kernex/broker';
import { cmdTopic } from '@kernex/shared';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { HELD_CHUNK, RedisBus } from './redis-bus.js';

/** A node's bus in this process, over a real redis-server, with what it was handed from the other nodes. */
interface Node {
  id: string;
  bus: RedisBus;
  registry: Registry;
  got: CrossingPacket[];
}

let seq = 0;
/** A fresh 24-hex device id. */
const deviceId = (): string => (++seq).toString(16).padStart(24, 'a');
const packet = (topic: string, payload: string): CrossingPacket => ({ topic, payload: Buffer.from(payload).toString('base64'), qos: 1, brokerId: 'b', brokerCounter: ++seq });
/** Aedes' announcement that a broker has a new client (it crosses to every node). */
const announce = (n: Node, device: string): void => n.bus.send(packet(`$SYS/${n.id}/new/clients`, device));
/** Aedes' announcement that a broker's client is gone (it crosses to every node). */
const depart = (n: Node, device: string): void => n.bus.send(packet(`$SYS/${n.id}/disconnect/clients`, device));
const commandsTo = (n: Node, device: string): CrossingPacket[] => n.got.filter((p) => p.topic === cmdTopic(device));
const counter = async (n: Node, name: string, route: string): Promise<number> =>
  (await n.registry.getSingleMetric(name)!.get()).values.find((v) => v.labels.route === route)?.value ?? 0;

const counterOf = async (n: Node, name: string, label: string, value: string): Promise<number> =>
  (await n.registry.getSingleMetric(name)!.get()).values.find((v) => v.labels[label] === value)?.value ?? 0;
const gauge = async (n: Node, name: string): Promise<number> => (await n.registry.getSingleMetric(name)!.get()).values[0]!.value;

/** Where a command crosses between nodes (DESIGN §8, aedes#703), with three buses on one redis-server. */
describe('commands over the Redis bus', () => {
  let redis: TestRedis;
  const nodes: Node[] = [];
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    redis = await startRedis();
    for (const id of ['route-1', 'route-2', 'route-3']) {
      const registry = new Registry();
      const bus = await RedisBus.connect(redis.url, id, log, registry);
      const n: Node = { id, bus, registry, got: [] };
      bus.onPacket((p) => n.got.push(p));
      nodes.push(n);
    }
  });
  afterAll(async () => {
    for (const n of nodes) await n.bus.close();
    await redis?.stop();
  });

  it('sends a command to the node that announced the device, and to no other', async () => {
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    const d = deviceId();
    announce(n2, d);
    await expect.poll(() => n1.bus.owners.ownerOf(d)).toBe('route-2');
    n1.bus.send(packet(cmdTopic(d), 'one'));
    n1.bus.send(packet(cmdTopic(d), 'two'));
    await expect.poll(() => commandsTo(n2, d).length).toBe(2);
    // A later command to a third node's device has passed through Redis after these: node 3 would have them by then.
    const marker = deviceId();
    n1.bus.send(packet(cmdTopic(marker), 'marker'));
    await expect.poll(() => commandsTo(n3, marker).length).toBe(1);
    expect(commandsTo(n3, d)).toEqual([]);
  });

  it('sends a command for a device no node has announced to every node', async () => {
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    const d = deviceId();
    n1.bus.send(packet(cmdTopic(d), 'anyone'));
    await expect.poll(() => [commandsTo(n2, d).length, commandsTo(n3, d).length]).toEqual([1, 1]);
  });

  it('has a node that hears of a takeover before a command for the old session send it on to every node', async () => {
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    const d = deviceId();
    announce(n2, d);
    await expect.poll(() => [n1.bus.owners.ownerOf(d), n3.bus.owners.ownerOf(d)]).toEqual(['route-2', 'route-2']);
    // Node 1 has not heard yet that the device moved to node 3 (its view is a moment behind); node 2 has.
    announce(n3, d);
    await expect.poll(() => n2.bus.owners.ownerOf(d)).toBe('route-3');
    n1.bus.owners.connected(d, 'route-2');
    const forwarded = await counter(n2, 'kernex_cluster_commands_sent_total', 'forwarded');
    n1.bus.send(packet(cmdTopic(d), 'raced'));
    await expect.poll(() => commandsTo(n3, d).length).toBe(1);
    expect(await counter(n2, 'kernex_cluster_commands_sent_total', 'forwarded')).toBe(forwarded + 1);
    expect(await counter(n3, 'kernex_cluster_commands_received_total', 'forwarded')).toBeGreaterThan(0);
  });

  it('passes a node’s command for its own device through Redis to itself only, and does not hand it over again', async () => {
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    const d = deviceId();
    announce(n1, d);
    expect(n1.bus.owners.isMine(d)).toBe(true);
    await expect.poll(() => [n2.bus.owners.ownerOf(d), n3.bus.owners.ownerOf(d)]).toEqual(['route-1', 'route-1']);
    const sent = await counter(n1, 'kernex_cluster_commands_sent_total', 'owner');
    n1.bus.send(packet(cmdTopic(d), 'mine'));
    // It reached a listener on node 1's own channel (node 1 delivered it locally already).
    await expect.poll(() => counter(n1, 'kernex_cluster_commands_sent_total', 'owner')).toBe(sent + 1);
    const marker = deviceId();
    n1.bus.send(packet(cmdTopic(marker), 'marker'));
    await expect.poll(() => [commandsTo(n2, marker).length, commandsTo(n3, marker).length]).toEqual([1, 1]);
    expect([commandsTo(n1, d), commandsTo(n2, d), commandsTo(n3, d)]).toEqual([[], [], []]);
  });

  it('has the owner by every announcement send a command on to every node when its broker does not hold the device', async () => {
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    const d = deviceId();
    announce(n2, d);
    await expect.poll(() => [n1.bus.owners.ownerOf(d), n3.bus.owners.ownerOf(d)]).toEqual(['route-2', 'route-2']);
    // The device moved to node 3 while node 3's Redis was away: nobody heard, and node 2's broker has lost it.
    n2.bus.holdsWith((id) => id !== d);
    try {
      n1.bus.send(packet(cmdTopic(d), 'moved unheard'));
      await expect.poll(() => commandsTo(n3, d).length).toBe(1);
      expect(commandsTo(n2, d)).toHaveLength(1); // node 2 got it as the owner, and sent it on
    } finally {
      n2.bus.holdsWith(() => true);
    }
  });

  it('forgets a device on every node once the node holding it announces its disconnection, and keeps one that moved on', async () => {
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    n2.bus.holdsWith(() => false); // node 2's broker holds none of these when it announces their end
    const gone = deviceId();
    const moved = deviceId();
    announce(n2, gone);
    announce(n2, moved);
    await expect.poll(() => [n1.bus.owners.ownerOf(gone), n1.bus.owners.ownerOf(moved)]).toEqual(['route-2', 'route-2']);
    // The device moved to node 3, and every node hears that before node 2's disconnect.
    announce(n3, moved);
    await expect.poll(() => [n1.bus.owners.ownerOf(moved), n2.bus.owners.ownerOf(moved)]).toEqual(['route-3', 'route-3']);
    const known = await gauge(n1, 'kernex_cluster_device_owners');
    depart(n2, gone);
    depart(n2, moved);
    // Node 2's next announcement reaches node 1 after its disconnects (one publisher's messages, in order).
    const marker = deviceId();
    announce(n2, marker);
    await expect.poll(() => n1.bus.owners.ownerOf(marker)).toBe('route-2');
    expect([n1.bus.owners.ownerOf(gone), n1.bus.owners.ownerOf(moved)]).toEqual([undefined, 'route-3']);
    expect([n2.bus.owners.ownerOf(gone), n2.bus.owners.ownerOf(moved)]).toEqual([undefined, 'route-3']);
    expect(await gauge(n1, 'kernex_cluster_device_owners')).toBe(known); // one gone, one new
  });

  it('does not announce the end of a connection while its broker holds a newer one of the device (a takeover on one node)', async () => {
    const [n1, n2] = nodes as [Node, Node];
    const d = deviceId();
    n1.bus.holdsWith((id) => id === d);
    announce(n1, d);
    await expect.poll(() => n2.bus.owners.ownerOf(d)).toBe('route-1');
    // Aedes ends the older connection after announcing the newer one (moscajs/aedes#153).
    depart(n1, d);
    const marker = deviceId();
    announce(n1, marker);
    await expect.poll(() => n2.bus.owners.ownerOf(marker)).toBe('route-1');
    expect([n1.bus.owners.isMine(d), n2.bus.owners.ownerOf(d)]).toEqual([true, 'route-1']);
  });

  it('makes a node the owner on every other node of the devices it says it holds, in chunks, leaving out one it heard taken over', async () => {
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    n3.bus.holdsWith(() => true);
    const ids = Array.from({ length: HELD_CHUNK + 2 }, () => deviceId());
    const takenOver = ids[0]!;
    // Its map after the outage: what its broker holds (the server's reset), then a takeover heard on node 1.
    for (const id of ids) n3.bus.owners.connected(id, 'route-3');
    n3.bus.owners.connected(takenOver, 'route-1');
    n1.bus.owners.connected(takenOver, 'route-1');
    const chunks = (n: Node): Promise<number> => counterOf(n, 'kernex_cluster_bus_received_total', 'kind', 'held');
    const before = [await chunks(n1), await chunks(n2)];
    expect(n3.bus.announceHeld(ids)).toBe(HELD_CHUNK + 1);
    await expect.poll(async () => [await chunks(n1), await chunks(n2)]).toEqual([before[0]! + 2, before[1]! + 2]);
    for (const n of [n1, n2]) expect(ids.slice(1).filter((id) => n.bus.owners.ownerOf(id) !== 'route-3')).toEqual([]);
    expect([n1.bus.owners.ownerOf(takenOver), n2.bus.owners.ownerOf(takenOver)]).toEqual(['route-1', undefined]);
  });

  it('sends to every node when nobody listens on the owner’s channel', async () => {
    const [n1, n2] = nodes as [Node, Node];
    const d = deviceId();
    n1.bus.owners.connected(d, 'route-gone');
    n1.bus.send(packet(cmdTopic(d), 'orphan'));
    await expect.poll(() => commandsTo(n2, d).length).toBe(1);
    // ...and forgets the owner that nobody answers for (a killed node whose devices never came back).
    expect(n1.bus.owners.ownerOf(d)).toBeUndefined();
  });

  it('takes from a held list only device ids, and nothing from a list longer than one chunk', async () => {
    const [n1, n2] = nodes as [Node, Node];
    const dropped = (): Promise<number> => counterOf(n2, 'kernex_cluster_bus_dropped_total', 'reason', 'malformed');
    const before = await dropped();
    const tooMany = Array.from({ length: HELD_CHUNK + 1 }, () => deviceId());
    const good = deviceId();
    const raw = (deviceIds: unknown[]): Promise<number> => n1.bus.client.publish('kernex:bus', JSON.stringify({ from: 'route-x', msg: { kind: 'held', deviceIds } }));
    await raw(tooMany);
    await raw(['not-a-device', 42, good.toUpperCase(), good]);
    // One publisher's messages arrive in order: once the second is in, the first was handled.
    await expect.poll(() => n2.bus.owners.ownerOf(good)).toBe('route-x');
    expect(tooMany.filter((id) => n2.bus.owners.ownerOf(id) !== undefined)).toEqual([]);
    expect([n2.bus.owners.ownerOf('not-a-device'), n2.bus.owners.ownerOf(good.toUpperCase())]).toEqual([undefined, undefined]);
    expect(await dropped()).toBe(before + 1);
  });
});
