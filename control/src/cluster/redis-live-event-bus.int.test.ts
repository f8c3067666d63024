import type { Redis } from 'ioredis';
import { once } from 'node:events';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LiveEvent } from '../events/event-bus.js';
import { liveEventBusContract } from '../test-support/event-bus-contract.js';
import { startRedis, type TestRedis } from '../test-support/redis.js';
import { RedisBus } from './redis-bus.js';
import { RedisLiveEventBus } from './redis-live-event-bus.js';

type Ev = { type: 'device'; data: { id: string; online: boolean } };
const presence = (id: string, online: boolean): Ev => ({ type: 'device', data: { id, online } });

/** How many subscribers Redis counts on the live channel (asked through `bus`). */
const liveSubscribers = async (bus: RedisBus): Promise<number> => Number(((await bus.client.pubsub('NUMSUB', 'kernex:bus:live')) as [string, number])[1]);
/** Resolves once Redis counts no subscriber of the live channel (each look is a round trip). */
async function noLiveSubscriber(bus: RedisBus): Promise<void> {
  while ((await liveSubscribers(bus)) > 0);
}
/**
 * Resolves once both of a bus's Redis connections have closed: the subscriber's
 * too, since a SUBSCRIBE it still took would be resent by ioredis itself.
 */
function bothClosed(bus: RedisBus): Promise<unknown> {
  const sub = (bus as unknown as { sub: Redis }).sub;
  return Promise.all([once(bus.client, 'close'), once(sub, 'close')]);
}

/** Live events seen on one node reach every node's streams (DESIGN §6, §8), over a real redis-server. */
describe('the Redis-backed live-event bus', () => {
  let redis: TestRedis;
  const buses: RedisBus[] = [];
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    redis = await startRedis();
  });
  const ownRedis: TestRedis[] = [];
  afterAll(async () => {
    for (const b of buses) await b.close();
    await redis?.stop();
    for (const r of ownRedis) await r.stop();
  });

  const registries = new Map<RedisLiveEventBus<Ev>, { bus: RedisBus; registry: Registry }>();
  const node = async (id: string): Promise<RedisLiveEventBus<Ev>> => {
    const registry = new Registry();
    const bus = await RedisBus.connect(redis.url, id, log, registry);
    buses.push(bus);
    const live = new RedisLiveEventBus<Ev>(bus);
    registries.set(live, { bus, registry });
    return live;
  };
  /** Live events this node has received from others over Redis, as its metrics say. */
  const liveReceived = async (live: RedisLiveEventBus<Ev>): Promise<number> =>
    (await registries.get(live)!.registry.getSingleMetric('kernex_cluster_bus_received_total')!.get()).values.find((v) => v.labels.kind === 'live')?.value ?? 0;
  /** Resolves once `got` holds `n` events. */
  const until = (got: Ev[], n: number, bus: RedisLiveEventBus<Ev>): Promise<void> =>
    new Promise((resolve) => {
      if (got.length >= n) return resolve();
      const off = bus.subscribe(() => {
        if (got.length >= n) {
          off();
          resolve();
        }
      });
    });

  it('delivers what one node publishes to its own subscribers and to the other node’s, in order', async () => {
    const [a, b] = [await node('live-a'), await node('live-b')];
    const onA: Ev[] = [];
    const onB: Ev[] = [];
    a.subscribe((e) => onA.push(e));
    b.subscribe((e) => onB.push(e));
    await b.listening();
    const sent = [presence('d1', true), presence('d2', true), presence('d1', false)];
    const arrived = until(onB, sent.length, b);
    for (const e of sent) a.publish(e);
    expect(onA).toEqual(sent); // at once, locally
    await arrived;
    expect(onB).toEqual(sent);
    await Promise.all([a.close(), b.close()]);
  });

  it('keeps delivering to others when one subscriber throws, and stops for one that unsubscribed', async () => {
    const [a, b] = [await node('live-c'), await node('live-d')];
    const got: Ev[] = [];
    const gone: Ev[] = [];
    b.subscribe(() => {
      throw new Error('listener broke');
    });
    b.subscribe((e) => got.push(e));
    const off = b.subscribe((e) => gone.push(e));
    off();
    await b.listening();
    const arrived = until(got, 1, b);
    expect(() => a.publish(presence('d3', true))).not.toThrow();
    await arrived;
    expect(got).toEqual([presence('d3', true)]);
    expect(gone).toEqual([]);
    await Promise.all([a.close(), b.close()]);
  });

  it('sends a node the other nodes’ live events only while it has a subscriber (an open stream)', async () => {
    const [a, b] = [await node('live-e'), await node('live-f')];
    const busA = registries.get(a)!.bus;
    const busB = registries.get(b)!.bus;
    /** A message on the bus every node hears, published after what `a` published so far: Redis keeps one publisher's order. */
    const marker = async (deviceId: string): Promise<void> => {
      const heard = new Promise<void>((resolve) => {
        const on = (m: { kind: string; deviceId?: string }): void => {
          if (m.kind === 'disconnect' && m.deviceId === deviceId) {
            busB.off('message', on);
            resolve();
          }
        };
        busB.on('message', on);
      });
      busA.publish({ kind: 'disconnect', deviceId });
      await heard;
    };
    a.publish(presence('before', true)); // b has no subscriber: not sent to it
    await marker('m1');
    expect(await liveReceived(b)).toBe(0);

    const got: Ev[] = [];
    const off = b.subscribe((e) => got.push(e));
    await b.listening();
    const arrived = until(got, 1, b);
    a.publish(presence('during', true));
    await arrived;
    expect(got).toEqual([presence('during', true)]);
    expect(await liveReceived(b)).toBe(1);

    off(); // the last subscriber: b unsubscribes the live channel
    await noLiveSubscriber(busA);
    a.publish(presence('after', true));
    await marker('m2');
    expect(got).toEqual([presence('during', true)]);
    expect(await liveReceived(b)).toBe(1);
    await Promise.all([a.close(), b.close()]);
  });

  it('has a node whose first stream opened while Redis was away hear the other nodes once Redis is back', async () => {
    const own = await startRedis(); // stopped and started here: the other tests keep theirs
    ownRedis.push(own); // stopped in afterAll too, should this test fail midway
    const registry = new Registry();
    const [busA, busB] = [await RedisBus.connect(own.url, 'live-g', log, new Registry()), await RedisBus.connect(own.url, 'live-h', log, registry)];
    buses.push(busA, busB);
    const [a, b] = [new RedisLiveEventBus<Ev>(busA), new RedisLiveEventBus<Ev>(busB)];
    try {
      const lost = bothClosed(busB);
      await own.stop();
      await lost;
      const got: Ev[] = [];
      b.subscribe((e) => got.push(e)); // its subscription cannot reach Redis now
      await b.listening();
      const back = Promise.all([once(busA, 'recovered'), once(busB, 'recovered')]);
      await own.start();
      await back;
      await b.listening();
      const arrived = until(got, 1, b);
      a.publish(presence('after-outage', true));
      await arrived;
      expect(got).toEqual([presence('after-outage', true)]);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await own.stop();
    }
  });

  it('has a node whose last stream closed while Redis was away stop hearing live events once Redis is back', async () => {
    const own = await startRedis();
    ownRedis.push(own);
    const [busA, busB] = [await RedisBus.connect(own.url, 'live-i', log, new Registry()), await RedisBus.connect(own.url, 'live-j', log, new Registry())];
    buses.push(busA, busB);
    const b = new RedisLiveEventBus<Ev>(busB);
    try {
      const off = b.subscribe(() => {});
      await b.listening();
      const lost = bothClosed(busB);
      await own.stop();
      await lost;
      off(); // its unsubscribe cannot reach Redis now; ioredis will resubscribe the channel by itself
      const back = Promise.all([once(busA, 'recovered'), once(busB, 'recovered')]);
      await own.start();
      await back;
      await noLiveSubscriber(busA);
      expect(await liveSubscribers(busA)).toBe(0);
    } finally {
      await b.close();
      await own.stop();
    }
  });
});

// The contract every LiveEventBus passes, against this one on a real redis-server.
describe('the Redis-backed live-event bus, as a LiveEventBus', () => {
  let redis: TestRedis;
  const buses: RedisBus[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const b of buses) await b.close();
    await redis?.stop();
  });
  let n = 0;
  liveEventBusContract('redis', async () => {
    const bus = await RedisBus.connect(redis.url, `contract-${++n}`, pino({ level: 'silent' }), new Registry());
    buses.push(bus);
    return new RedisLiveEventBus<LiveEvent>(bus);
  });
});
