import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { PresenceChange } from '../store/devices.pg.js';
import { PresenceWriter, type PresenceRepository } from './presence-writer.js';

/** A store whose first write fails, as when the database is briefly away; `during` runs inside that write. */
class FlakyStore implements PresenceRepository {
  failures = 1;
  during: () => void = () => {};
  readonly written: PresenceChange[][] = [];
  async writePresence(changes: readonly PresenceChange[]): Promise<void> {
    if (this.failures-- > 0) {
      this.during();
      throw new Error('connection lost');
    }
    this.written.push([...changes]);
  }
}

describe('PresenceWriter when a write fails', () => {
  it('keeps the changes for the next write, unless a newer change of the same device came in meanwhile', async () => {
    const store = new FlakyStore();
    const writer = new PresenceWriter(store, pino({ level: 'silent' }), { intervalMs: 60_000 });
    const t0 = new Date(1000);
    const t1 = new Date(2000);
    store.during = () => writer.record('d2', false, t1);
    writer.record('d1', true, t0);
    writer.record('d2', true, t0);
    await writer.flush();
    expect(store.written).toEqual([]);
    await writer.flush();
    const byId = (a: PresenceChange, b: PresenceChange) => a.deviceId.localeCompare(b.deviceId);
    expect(store.written.map((w) => [...w].sort(byId))).toEqual([
      [
        { deviceId: 'd1', online: true, at: t0 },
        { deviceId: 'd2', online: false, at: t1 },
      ],
    ]);
    await writer.close();
  });
});

describe('PresenceWriter with a clock', () => {
  it('writes each change at its time on that clock', async () => {
    const store = new FlakyStore();
    store.failures = 0;
    const writer = new PresenceWriter(store, pino({ level: 'silent' }), { intervalMs: 60_000, clock: (at) => new Date(at.getTime() + 60_000) });
    writer.record('d1', true, new Date(1000));
    await writer.flush();
    expect(store.written).toEqual([[{ deviceId: 'd1', online: true, at: new Date(61_000) }]]);
  });
});

describe('PresenceWriter after a lapsed lease', () => {
  it('writes connected devices online again as reasserted sessions, but keeps a change already waiting', async () => {
    const store = new FlakyStore();
    store.failures = 0;
    const writer = new PresenceWriter(store, pino({ level: 'silent' }), { intervalMs: 60_000 });
    const t0 = new Date(1000);
    const t1 = new Date(2000);
    writer.record('d1', true, t0);
    writer.reassert('d1', t1);
    writer.reassert('d2', t1);
    await writer.flush();
    expect(store.written).toEqual([
      [
        { deviceId: 'd1', online: true, at: t0 },
        { deviceId: 'd2', online: true, at: t1, reassert: true },
      ],
    ]);
  });
});
