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

/** Live events seen on one node reach every node's streams (DESIGN §6, §8), over a real redis-server. */
describe('the Redis-backed live-event bus', () => {
  let redis: TestRedis;
  const buses: RedisBus[] = [];
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const b of buses) await b.close();
    await redis?.stop();
  });

  const node = async (id: string): Promise<RedisLiveEventBus<Ev>> => {
    const bus = await RedisBus.connect(redis.url, id, log, new Registry());
    buses.push(bus);
    return new RedisLiveEventBus<Ev>(bus);
  };
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
    const arrived = until(got, 1, b);
    expect(() => a.publish(presence('d3', true))).not.toThrow();
    await arrived;
    expect(got).toEqual([presence('d3', true)]);
    expect(gone).toEqual([]);
    await Promise.all([a.close(), b.close()]);
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
