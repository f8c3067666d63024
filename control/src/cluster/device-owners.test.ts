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

  it('forgets a device when the node it names announces its disconnection, and keeps it when another node holds it since', () => {
    const owners = new DeviceOwners('node-1');
    owners.connected('gone', 'node-2');
    owners.connected('moved', 'node-2');
    owners.connected('mine', 'node-1');
    // The device moved to node 3; node 3's connect was heard before node 2's disconnect.
    owners.connected('moved', 'node-3');
    owners.disconnected('gone', 'node-2');
    owners.disconnected('moved', 'node-2');
    owners.disconnected('mine', 'node-2');
    owners.disconnected('unknown', 'node-2');
    expect([owners.ownerOf('gone'), owners.ownerOf('moved'), owners.ownerOf('mine'), owners.size]).toEqual([undefined, 'node-3', 'node-1', 2]);
    owners.disconnected('mine', 'node-1');
    expect([owners.ownerOf('mine'), owners.size]).toEqual([undefined, 1]);
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
