import { describe, expect, it } from 'vitest';
import { DeviceOwners } from './device-owners.js';

describe('the map of which node holds a device', () => {
  it('follows the latest announced connection of a device', () => {
    const owners = new DeviceOwners('node-1');
    owners.connected('a', 'node-2');
    expect(owners.ownerOf('a')).toBe('node-2');
    owners.connected('a', 'node-1');
    expect(owners.isMine('a')).toBe(true);
    owners.connected('a', 'node-3');
    expect([owners.ownerOf('a'), owners.isMine('a')]).toEqual(['node-3', false]);
    expect(owners.ownerOf('b')).toBeUndefined();
  });

  it('seeds only devices not heard of, and never claims one for this node from the database', () => {
    const owners = new DeviceOwners('node-1');
    owners.connected('a', 'node-3');
    owners.seed([
      { deviceId: 'a', nodeId: 'node-2' },
      { deviceId: 'b', nodeId: 'node-2' },
      { deviceId: 'c', nodeId: 'node-1' },
    ]);
    expect([owners.ownerOf('a'), owners.ownerOf('b'), owners.ownerOf('c')]).toEqual(['node-3', 'node-2', undefined]);
    expect(owners.size).toBe(2);
  });

  it('starts again from the devices connected here after a reset', () => {
    const owners = new DeviceOwners('node-1');
    owners.connected('a', 'node-2');
    owners.reset(['b']);
    expect([owners.ownerOf('a'), owners.isMine('b'), owners.size]).toEqual([undefined, true, 1]);
  });
});
