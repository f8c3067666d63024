import { MemoryDeviceDirectory } from './device-directory.js';
import { deviceDirectoryContract } from './test-support/device-directory.contract.js';

deviceDirectoryContract('MemoryDeviceDirectory', async () => {
  const directory = new MemoryDeviceDirectory();
  return {
    directory,
    add: async (id, publicKey, status) => void directory.set(id, { publicKey, status }),
    setStatus: async (id, status) => void directory.set(id, { ...directory.devices.get(id)!, status }),
    online: async (id) => directory.presence.get(id)?.online,
    close: async () => {},
  };
});
