import pino from 'pino';
import postgres from 'postgres';
import { deviceDirectoryContract } from '../../../broker/src/test-support/device-directory.contract.js';
import { DevicesStore } from '../store/devices.pg.js';
import { migrate } from '../store/migrate.js';
import { createTestDatabase } from '../test-support/test-database.js';
import { PgDeviceDirectory } from './device-directory.service.js';
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
