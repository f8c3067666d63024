import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Sessions, type SessionClient } from './sessions.js';

/** Just enough of an Aedes client: an id and a socket that can close. */
interface FakeClient extends SessionClient {
  id: string;
  conn: EventEmitter;
}
const fakeClient = (id: string): FakeClient => ({ id, conn: new EventEmitter() });

describe('Sessions', () => {
  it('announces a device offline only when its last connection ends', () => {
    const s = new Sessions<FakeClient>();
    const a = fakeClient('d1');
    s.add('d1', a, () => {});
    expect(s.ready('d1', a)).toBe(true);
    expect(s.isOnline('d1')).toBe(true);
    expect(s.remove('d1', a)).toBe(true);
    expect(s.remove('d1', a)).toBe(false); // both clientDisconnect and the socket close report it
    expect(s.isOnline('d1')).toBe(false);
  });

  it('keeps a device online through a takeover, whichever order Aedes reports it in', () => {
    for (const oldGoesFirst of [true, false]) {
      const s = new Sessions<FakeClient>();
      const old = fakeClient('d1');
      const next = fakeClient('d1');
      s.add('d1', old, () => {});
      s.ready('d1', old);
      s.add('d1', next, () => {});
      expect(s.hasOther('d1', old)).toBe(true);
      if (oldGoesFirst) {
        expect(s.remove('d1', old)).toBe(false);
        expect(s.ready('d1', next)).toBe(true);
      } else {
        // moscajs/aedes#153: the old socket's close arrives after the newcomer is ready.
        expect(s.ready('d1', next)).toBe(true);
        expect(s.remove('d1', old)).toBe(false);
      }
      expect(s.isOnline('d1')).toBe(true);
      expect(s.remove('d1', next)).toBe(true);
    }
  });

  it('keeps the old connection online when the newcomer dies before its CONNACK', () => {
    const s = new Sessions<FakeClient>();
    const old = fakeClient('d1');
    const next = fakeClient('d1');
    s.add('d1', old, () => {});
    s.ready('d1', old);
    s.add('d1', next, () => {});
    expect(s.remove('d1', next)).toBe(false);
    expect(s.isOnline('d1')).toBe(true);
    expect(s.clients('d1')).toEqual([old]);
  });

  it('keeps a device online through two takeovers at once, and offline only when the last of three connections ends', () => {
    const s = new Sessions<FakeClient>();
    const [a, b, c] = [fakeClient('d1'), fakeClient('d1'), fakeClient('d1')];
    s.add('d1', a, () => {});
    s.ready('d1', a);
    s.add('d1', b, () => {});
    s.add('d1', c, () => {});
    s.add('d1', c, () => {}); // reported twice: still one connection
    expect(s.clients('d1')).toEqual([a, b, c]);
    expect(s.remove('d1', b)).toBe(false);
    expect(s.remove('d1', b)).toBe(false);
    expect(s.ready('d1', c)).toBe(true);
    expect(s.remove('d1', a)).toBe(false);
    expect(s.hasOther('d1', c)).toBe(false);
    expect(s.clients('d1')).toEqual([c]);
    expect(s.isOnline('d1')).toBe(true);
    expect(s.remove('d1', c)).toBe(true);
    expect(s.isOnline('d1')).toBe(false);
    expect(s.clients('d1')).toEqual([]);
  });

  it('never announces a connection that closed before it was ready', () => {
    const s = new Sessions<FakeClient>();
    const a = fakeClient('d1');
    s.add('d1', a, () => {});
    expect(s.remove('d1', a)).toBe(false);
    expect(s.ready('d1', a)).toBe(false);
    expect(s.isOnline('d1')).toBe(false);
  });

  it('runs the gone callback when the socket closes', () => {
    const s = new Sessions<FakeClient>();
    const a = fakeClient('d1');
    let gone = 0;
    s.add('d1', a, () => gone++);
    a.conn.emit('close');
    expect(gone).toBe(1);
  });
});
