import { deviceIdFromPublicKey, generateDeviceKey, signDeviceJwt, verifyDeviceJwt } from '@kernex/shared';
import pino from 'pino';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { deviceDirectoryContract } from '../../../broker/src/test-support/device-directory.contract.js';
import { DevicesStore } from '../store/devices.pg.js';
import { migrate } from '../store/migrate.js';
import { createTestDatabase } from '../test-support/test-database.js';
import { MAX_PARSED_KEYS, PgDeviceDirectory } from './device-directory.service.js';
import { PresenceWriter } from '../presence/presence-writer.js';

const log = pino({ level: 'silent' });

deviceDirectoryContract('PgDeviceDirectory', async () => {
  const db = await createTestDatabase();
  const sql = postgres(db.url, { max: 4, onnotice: () => {} });
  await migrate(sql, log);
  const store = new DevicesStore(sql);
  const presence = new PresenceWriter(store, log);
  const directory = new PgDeviceDirectory(store, presence);
  return {
    directory,
    async add(id, publicKey, status) {
      await store.insert({ id, publicKey, name: undefined, hardware: undefined, tokenHash: undefined });
      if (status !== 'pending') await store.transition(id, ['pending'], status);
    },
    async setStatus(id, status) {
      await store.transition(id, ['pending', 'accepted', 'rejected', 'decommissioned'], status);
    },
    async online(id) {
      await presence.flush();
      return (await store.get(id))?.online;
    },
    async close() {
      await presence.close();
      await sql.end();
      await db.drop();
    },
  };
});

describe('PgDeviceDirectory parsed keys', () => {
  it('keeps a bounded number of parsed keys, however many devices connect, and still verifies a device whose key it dropped', async () => {
    const db = await createTestDatabase();
    const sql = postgres(db.url, { max: 4, onnotice: () => {} });
    try {
      await migrate(sql, log);
      const store = new DevicesStore(sql);
      const presence = new PresenceWriter(store, log);
      const directory = new PgDeviceDirectory(store, presence);
      const devices = await Promise.all(
        Array.from({ length: MAX_PARSED_KEYS + 8 }, async () => {
          const keys = await generateDeviceKey('p256');
          return { ...keys, id: deviceIdFromPublicKey(keys.publicKeyPem) };
        }),
      );
      for (const d of devices) {
        await store.insert({ id: d.id, publicKey: d.publicKeyPem, name: undefined, hardware: undefined, tokenHash: undefined });
        await store.transition(d.id, ['pending'], 'accepted');
      }
      for (const d of devices) expect((await directory.lookup(d.id))?.status).toBe('accepted');
      expect(directory.parsedKeys).toBe(MAX_PARSED_KEYS);
      // The first device's parsed key was the oldest and went first: its key is parsed again from the row.
      const first = devices[0]!;
      const record = await directory.lookup(first.id);
      const jwt = await signDeviceJwt({ privateKey: first.privateKeyPem, deviceId: first.id, aud: 'kernex-mqtt' });
      await expect(verifyDeviceJwt(jwt, { publicKey: record!.publicKey, deviceId: first.id, aud: 'kernex-mqtt' })).resolves.toMatchObject({ sub: first.id });
      await presence.close();
    } finally {
      await sql.end();
      await db.drop();
    }
  });
});
