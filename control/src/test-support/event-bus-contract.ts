import { describe, expect, it } from 'vitest';
import type { LiveEvent, LiveEventBus } from '../events/event-bus.js';

const presence = (id: string, online: boolean): LiveEvent => ({ type: 'device', data: { id, online } });

/**
 * The contract every {@link LiveEventBus} passes (the aedes-persistence
 * pattern): run it against each implementation. `make` gives a fresh bus;
 * `settle` waits until events published so far reached subscribers (a no-op in process).
 */
export function liveEventBusContract(name: string, make: () => Promise<LiveEventBus>, settle: (bus: LiveEventBus) => Promise<void> = async () => {}): void {
  describe(`LiveEventBus contract: ${name}`, () => {
    it('delivers every event to every subscriber, in publish order', async () => {
      const bus = await make();
      const a: LiveEvent[] = [];
      const b: LiveEvent[] = [];
      bus.subscribe((e) => a.push(e));
      bus.subscribe((e) => b.push(e));
      const sent = [presence('d1', true), presence('d2', true), presence('d1', false)];
      for (const e of sent) bus.publish(e);
      await settle(bus);
      expect(a).toEqual(sent);
      expect(b).toEqual(sent);
      await bus.close();
    });

    it('answers listening() once a subscriber is in place, and delivers what is published after it', async () => {
      const bus = await make();
      await bus.listening(); // no subscriber yet: at once
      const got: LiveEvent[] = [];
      bus.subscribe((e) => got.push(e));
      await bus.listening();
      bus.publish(presence('d9', true));
      await settle(bus);
      expect(got).toEqual([presence('d9', true)]);
      await bus.close();
    });

    it('stops delivering to a subscriber that unsubscribed', async () => {
      const bus = await make();
      const got: LiveEvent[] = [];
      const off = bus.subscribe((e) => got.push(e));
      bus.publish(presence('d1', true));
      await settle(bus);
      off();
      bus.publish(presence('d1', false));
      await settle(bus);
      expect(got).toEqual([presence('d1', true)]);
      await bus.close();
    });

    it('keeps delivering to others when one subscriber throws', async () => {
      const bus = await make();
      const got: LiveEvent[] = [];
      bus.subscribe(() => {
        throw new Error('listener broke');
      });
      bus.subscribe((e) => got.push(e));
      expect(() => bus.publish(presence('d1', true))).not.toThrow();
      await settle(bus);
      expect(got).toEqual([presence('d1', true)]);
      await bus.close();
    });
  });
}
