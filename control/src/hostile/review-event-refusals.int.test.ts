import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { eventsTopic, generateDeviceKey } from '@kernex/shared';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { startServer, type RunningServer } from '../server.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { connectDevice, metric } from '../test-support/mqtt.js';
import { createTestDatabase, type TestDatabase } from '../test-support/test-database.js';

interface LogRecord {
  level: number;
  mod?: string;
  reason?: string;
  deviceId?: string;
}

// Issue 10 item 16: one bad device must not flood the log. The broker's own
// refusals were moved to debug with a rate-limited warn; an event the broker
// passed on but the event writer refuses (an execution that is not the
// device's, a transition out of an ended state) is a refused publish too.
describe('execution events refused by the event writer', () => {
  let database: TestDatabase;
  let dataDir: string;
  let server: RunningServer;
  const records: LogRecord[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kernex-review-'));
    const adminKey = `kx_test_${randomBytes(16).toString('hex')}`;
    const config = loadConfig({
      KERNEX_ADMIN_KEY: adminKey,
      KERNEX_REGISTER_RATE_LIMIT_PER_MIN: '1000000',
      DATABASE_URL: database.url,
      KERNEX_DATA_DIR: dataDir,
      KERNEX_HOST: '127.0.0.1',
      KERNEX_HTTP_PORT: '0',
      KERNEX_MQTT_PORT: '0',
      LOG_LEVEL: 'debug',
    });
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) records.push(JSON.parse(line) as LogRecord);
        cb();
      },
    });
    server = await startServer(config, pino({ level: 'debug' }, sink), { signingKeyPem: (await generateDeviceKey('rsa')).privateKeyPem });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await database?.drop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('logs each at debug with at most one warn summary, and counts every one', async () => {
    const token = await api('POST', `${server.httpUrl}/api/v1/enrollment-tokens`, { authorization: `Bearer ${server.config.adminKey}` }, { uses: 1, expiresInS: 600 });
    const device = await makeDevice();
    expect((await register(server.httpUrl, device, { enrollmentToken: token.body.token })).body.status).toBe('accepted');
    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, device);
    try {
      const refusals = 40;
      for (let i = 0; i < refusals; i++) {
        // QoS 1: the PUBACK comes once the writer has refused it (DESIGN §3).
        await client.publishAsync(eventsTopic(device.id), JSON.stringify({ executionId: '00000000-0000-0000-0000-000000000000', state: 'succeeded', ts: Date.now() }), { qos: 1 });
      }
      expect(await metric(server.httpUrl, 'kernex_execution_events_refused_total', { reason: 'unknown_execution' })).toBe(refusals);
      const mine = records.filter((r) => r.mod === 'events' && r.deviceId === device.id && r.reason === 'unknown_execution');
      expect(mine.filter((r) => r.level === 20)).toHaveLength(refusals);
      expect(mine.filter((r) => r.level >= 30).length).toBeLessThanOrEqual(1);
    } finally {
      await client.endAsync();
    }
  });
});
