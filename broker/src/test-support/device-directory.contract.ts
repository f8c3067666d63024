import { deviceIdFromPublicKey, generateDeviceKey, signDeviceJwt, verifyDeviceJwt, type DeviceStatus } from '@kernex/shared';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeviceDirectory } from '../device-directory.js';

/** What the contract needs around an implementation: a way to add devices and to read presence back. */
export interface DirectoryHarness {
  directory: DeviceDirectory;
  add(deviceId: string, publicKeyPem: string, status: DeviceStatus): Promise<void>;
  setStatus(deviceId: string, status: DeviceStatus): Promise<void>;
  /** The stored presence once pending writes are done; undefined when never reported. */
  online(deviceId: string): Promise<boolean | undefined>;
  close(): Promise<void>;
}

/**
 * The behaviour every {@link DeviceDirectory} must have, run against each
 * implementation (the aedes-persistence abstract-suite pattern): the memory
 * one here, the PostgreSQL one in control.
 */
export function deviceDirectoryContract(name: string, make: () => Promise<DirectoryHarness>): void {
  describe(`DeviceDirectory contract: ${name}`, () => {
    let h: DirectoryHarness;
    beforeEach(async () => {
      h = await make();
    });
    afterEach(async () => {
      await h.close();
    });

    const newDevice = async () => {
      const keys = await generateDeviceKey('p256');
      return { ...keys, id: deviceIdFromPublicKey(keys.publicKeyPem) };
    };

    it('answers undefined for an unknown device', async () => {
      expect(await h.directory.lookup('0123456789abcdef01234567')).toBeUndefined();
    });

    it('answers the status and a key that verifies the device JWTs', async () => {
      const d = await newDevice();
      await h.add(d.id, d.publicKeyPem, 'accepted');
      const record = await h.directory.lookup(d.id);
      expect(record?.status).toBe('accepted');
      const jwt = await signDeviceJwt({ privateKey: d.privateKeyPem, deviceId: d.id, aud: 'kernex-mqtt' });
      await expect(verifyDeviceJwt(jwt, { publicKey: record!.publicKey, deviceId: d.id, aud: 'kernex-mqtt' })).resolves.toMatchObject({ sub: d.id });
    });

    it('answers a status change on the next lookup', async () => {
      const d = await newDevice();
      await h.add(d.id, d.publicKeyPem, 'accepted');
      await h.directory.lookup(d.id);
      await h.setStatus(d.id, 'decommissioned');
      expect((await h.directory.lookup(d.id))?.status).toBe('decommissioned');
    });

    it('records connects and disconnects, the last report winning', async () => {
      const d = await newDevice();
      await h.add(d.id, d.publicKeyPem, 'accepted');
      h.directory.deviceConnected(d.id, new Date());
      expect(await h.online(d.id)).toBe(true);
      h.directory.deviceDisconnected(d.id, new Date());
      h.directory.deviceConnected(d.id, new Date());
      h.directory.deviceDisconnected(d.id, new Date());
      expect(await h.online(d.id)).toBe(false);
    });
  });
}
