import { cmdTopic, eventsTopic, MAX_DEVICE_PAYLOAD_BYTES, statusTopic, telemetryTopic, type Command } from '@kernex/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, makeDevice, register, type TestDevice } from '../test-support/devices.js';
import { brokerEvent, closed, connectDevice, metric, nextMessage, refusalCode, subackCodes } from '../test-support/mqtt.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

describe('devices over MQTT', () => {
  let server: TestServer;
  let url: string;
  let mqttUrl: string;
  let token: string;

  /** A registered device, accepted through the enrollment token unless `pending`. */
  const accepted = async (pending = false): Promise<TestDevice> => {
    const d = await makeDevice();
    const res = await register(url, d, pending ? {} : { enrollmentToken: token });
    expect(res.body.status).toBe(pending ? 'pending' : 'accepted');
    return d;
  };
  const refused = (reason: string) => metric(url, 'kernex_mqtt_refused_total', { reason });
  const device = (id: string) => api('GET', `${url}/api/v1/devices/${id}`, server.adminHeaders).then((r) => r.body);

  beforeAll(async () => {
    server = await startTestServer();
    url = server.httpUrl;
    mqttUrl = `mqtt://127.0.0.1:${server.mqttPort}`;
    token = (await api('POST', `${url}/api/v1/enrollment-tokens`, server.adminHeaders, { uses: 100, expiresInS: 3600 })).body.token;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('lets an accepted device in, and delivers its valid messages as broker events', async () => {
    const d = await accepted();
    const client = await connectDevice(mqttUrl, d);
    const subscribed = brokerEvent(server.broker, 'device:subscribed');
    const granted = await client.subscribeAsync(cmdTopic(d.id), { qos: 1 });
    expect(granted).toEqual([expect.objectContaining({ topic: cmdTopic(d.id), qos: 1 })]);
    expect(await subscribed).toEqual([d.id]);

    const event = brokerEvent(server.broker, 'device:event');
    const telemetry = brokerEvent(server.broker, 'device:telemetry');
    const status = brokerEvent(server.broker, 'device:status');
    const inBefore = await metric(url, 'kernex_mqtt_messages_in_total', { channel: 'events' });
    await client.publishAsync(eventsTopic(d.id), JSON.stringify({ executionId: 'e1', state: 'downloading', progress: 40, ts: Date.now() }), { qos: 1 });
    await client.publishAsync(telemetryTopic(d.id), JSON.stringify({ cpu: 12.5, mem: [1, 2], v: '1.0.0' }));
    await client.publishAsync(statusTopic(d.id), JSON.stringify({ state: 'online' }), { qos: 1, retain: true });
    expect(await event).toEqual([d.id, { executionId: 'e1', state: 'downloading', progress: 40, ts: expect.any(Number) }]);
    expect(await telemetry).toEqual([d.id, { cpu: 12.5, mem: [1, 2], v: '1.0.0' }]);
    expect(await status).toEqual([d.id, { state: 'online' }]);
    expect(await metric(url, 'kernex_mqtt_messages_in_total', { channel: 'events' })).toBe(inBefore + 1);

    // The server's own publish bypasses the device ACL and arrives with QoS 1.
    const command: Command = { id: 'c1', type: 'cancel', executionId: 'e1', issuedAt: new Date().toISOString() };
    const outBefore = await metric(url, 'kernex_mqtt_messages_out_total');
    const message = nextMessage(client);
    await server.broker.publishCommand(d.id, command);
    const [topic, payload, packet] = await message;
    expect(topic).toBe(cmdTopic(d.id));
    expect(JSON.parse(String(payload))).toEqual(command);
    expect(packet.qos).toBe(1);
    expect(await metric(url, 'kernex_mqtt_messages_out_total')).toBe(outBefore + 1);
    await expect(server.broker.publishCommand(d.id, { type: 'deploy' } as never)).rejects.toThrow(TypeError);
    await client.endAsync();
  });

  it('refuses every bad CONNECT with CONNACK 5 and counts the reason', async () => {
    const d = await accepted();
    const other = await accepted();
    const pending = await accepted(true);
    const stranger = await makeDevice();
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string, () => Promise<number | undefined>]> = [
      ['unknown_device', () => refusalCode(connectDevice(mqttUrl, stranger))],
      ['device_pending', () => refusalCode(connectDevice(mqttUrl, pending))],
      ['client_id_mismatch', () => refusalCode(connectDevice(mqttUrl, d, { username: other.id }))],
      ['client_id_mismatch', () => refusalCode(connectDevice(mqttUrl, d, { clientId: 'someone-else' }))],
      ['no_password', () => refusalCode(connectDevice(mqttUrl, d, { password: undefined }))],
      ['wrong_aud', async () => refusalCode(connectDevice(mqttUrl, d, { password: await d.jwt('kernex-http') }))],
      ['expired', async () => refusalCode(connectDevice(mqttUrl, d, { password: await d.jwt('kernex-mqtt', { now: now - 7200, ttlS: 3600 }) }))],
      ['not_yet_valid', async () => refusalCode(connectDevice(mqttUrl, d, { password: await d.jwt('kernex-mqtt', { now: now + 3600 }) }))],
      // Another device's valid JWT, replayed under this device's id: it does not verify with this key.
      ['bad_signature', async () => refusalCode(connectDevice(mqttUrl, d, { password: await other.jwt('kernex-mqtt') }))],
      // Signed by this device, but claiming to be another one.
      ['wrong_sub', async () => refusalCode(connectDevice(mqttUrl, d, { password: await d.jwt('kernex-mqtt', { deviceId: other.id }) }))],
      // A JWT for this id forged with another key.
      ['bad_signature', async () => refusalCode(connectDevice(mqttUrl, d, { password: await other.jwt('kernex-mqtt', { deviceId: d.id }) }))],
      ['malformed', () => refusalCode(connectDevice(mqttUrl, d, { password: 'not-a-jwt' }))],
    ];
    const before = new Map<string, number>();
    for (const [reason] of cases) before.set(reason, await refused(reason));
    for (const [reason, attempt] of cases) expect(await attempt(), reason).toBe(5);
    for (const [reason] of new Map(cases)) {
      const expected = cases.filter(([r]) => r === reason).length;
      expect(await refused(reason), reason).toBe(before.get(reason)! + expected);
    }
  });

  it('answers a reconnect with the same JWT from the cache, but never a different one', async () => {
    const d = await accepted();
    const other = await accepted();
    const jwt = await d.jwt('kernex-mqtt');
    for (let i = 0; i < 3; i++) await (await connectDevice(mqttUrl, d, { password: jwt })).endAsync();
    expect(await refusalCode(connectDevice(mqttUrl, d, { password: await other.jwt('kernex-mqtt', { deviceId: d.id }) }))).toBe(5);
  });

  it('refuses subscriptions outside the device own cmd topic with 0x80', async () => {
    const d = await accepted();
    const other = await accepted();
    const client = await connectDevice(mqttUrl, d);
    const before = await refused('acl_subscribe');
    const codes = await subackCodes(client, {
      [cmdTopic(other.id)]: { qos: 1 },
      'kx/+/cmd': { qos: 1 },
      [`kx/${d.id}/#`]: { qos: 1 },
      '#': { qos: 0 },
      [eventsTopic(d.id)]: { qos: 1 },
      [cmdTopic(d.id)]: { qos: 1 },
    });
    expect(codes).toEqual([128, 128, 128, 128, 128, 1]);
    expect(await refused('acl_subscribe')).toBe(before + 5);
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('drops and counts publishes to other topics and invalid payloads, keeping the session', async () => {
    const d = await accepted();
    const victim = await accepted();
    const client = await connectDevice(mqttUrl, d);
    const victimClient = await connectDevice(mqttUrl, victim);
    await victimClient.subscribeAsync(cmdTopic(victim.id), { qos: 1 });
    const leaked: string[] = [];
    victimClient.on('message', (topic) => leaked.push(topic));
    const events: unknown[] = [];
    const onEvent = (...args: unknown[]) => events.push(args);
    server.broker.on('device:event', onEvent);

    const bad: Array<[string, string, string | Buffer]> = [
      ['acl_publish', cmdTopic(victim.id), JSON.stringify({ id: 'x', type: 'cancel', executionId: 'e', issuedAt: 'now' })],
      ['acl_publish', eventsTopic(victim.id), JSON.stringify({ executionId: 'e', state: 'failed', ts: 1 })],
      ['acl_publish', cmdTopic(d.id), '{}'],
      ['acl_publish', 'elsewhere/topic', '{}'],
      ['invalid_json', eventsTopic(d.id), '{not json'],
      ['invalid_payload', eventsTopic(d.id), JSON.stringify({ executionId: 'e', state: 'exploded', ts: 1 })],
      ['invalid_payload', statusTopic(d.id), JSON.stringify({ state: 'sleepy' })],
      ['payload_too_large', telemetryTopic(d.id), JSON.stringify({ pad: 'x'.repeat(MAX_DEVICE_PAYLOAD_BYTES) })],
    ];
    const before = new Map<string, number>();
    for (const [reason] of bad) before.set(reason, await refused(reason));
    for (const [, topic, payload] of bad) await client.publishAsync(topic, payload, { qos: 1 });
    for (const [reason] of new Map(bad.map((b) => [b[0], b]))) {
      expect(await refused(reason), reason).toBe(before.get(reason)! + bad.filter((b) => b[0] === reason).length);
    }
    // Still connected, and a valid publish after all that gets through.
    const good = brokerEvent(server.broker, 'device:event');
    await client.publishAsync(eventsTopic(d.id), JSON.stringify({ executionId: 'ok', state: 'received', ts: 1 }), { qos: 1 });
    expect((await good)[1]).toMatchObject({ executionId: 'ok' });
    server.broker.off('device:event', onEvent);
    expect(events).toEqual([[d.id, { executionId: 'ok', state: 'received', ts: 1 }]]);
    expect(leaked).toEqual([]);
    await client.endAsync();
    await victimClient.endAsync();
  });

  it('tracks presence from connect and disconnect, written in batches', async () => {
    const d = await accepted();
    expect(await device(d.id)).toMatchObject({ online: false, lastSeenAt: null });
    const connected = brokerEvent(server.broker, 'device:connect');
    const client = await connectDevice(mqttUrl, d);
    expect(await connected).toEqual([d.id]);
    await expect.poll(() => device(d.id)).toMatchObject({ online: true, lastSeenAt: expect.any(String) });
    expect((await api('GET', `${url}/api/v1/devices?online=true`, server.adminHeaders)).body.items.map((x: { id: string }) => x.id)).toContain(d.id);

    const disconnected = brokerEvent(server.broker, 'device:disconnect');
    await client.endAsync();
    expect(await disconnected).toEqual([d.id]);
    await expect.poll(() => device(d.id)).toMatchObject({ online: false });
  });

  it('keeps a device online when a second connection takes its session over', async () => {
    const d = await accepted();
    const disconnects: string[] = [];
    const onDisconnect = (id: string) => disconnects.push(id);
    server.broker.on('device:disconnect', onDisconnect);
    const will = { topic: statusTopic(d.id), payload: Buffer.from('{"state":"offline"}'), qos: 1 as const, retain: true };
    const first = await connectDevice(mqttUrl, d, { clean: false, will });
    await expect.poll(() => device(d.id)).toMatchObject({ online: true });
    const staleWills = await refused('stale_will');

    const firstClosed = closed(first);
    const second = await connectDevice(mqttUrl, d, { clean: false });
    await firstClosed;
    await first.endAsync(true);
    // Write whatever the takeover queued, then check the stored and the live view.
    await server.services.presence.flush();
    expect(await device(d.id)).toMatchObject({ online: true });
    expect(server.broker.isOnline(d.id)).toBe(true);
    expect(disconnects).not.toContain(d.id);
    // The first connection's will would say "offline" while the device is online: dropped.
    expect(await refused('stale_will')).toBe(staleWills + 1);

    // The second session works: a command reaches it.
    await second.subscribeAsync(cmdTopic(d.id), { qos: 1 });
    const message = nextMessage(second);
    await server.broker.publishCommand(d.id, { id: 'c', type: 'cancel', executionId: 'e', issuedAt: new Date().toISOString() });
    await message;

    server.broker.off('device:disconnect', onDisconnect);
    await second.endAsync();

    // A connection that dies without DISCONNECT: its will is published and the device goes offline.
    const third = await connectDevice(mqttUrl, d, { will });
    const statusEvent = brokerEvent(server.broker, 'device:status');
    const gone = brokerEvent(server.broker, 'device:disconnect');
    third.stream.destroy();
    expect(await statusEvent).toEqual([d.id, { state: 'offline' }]);
    await gone;
    await third.endAsync(true);
    await expect.poll(() => device(d.id)).toMatchObject({ online: false });
  });

  it('disconnects a device at once when it is decommissioned or rejected, and refuses it from then on', async () => {
    for (const action of ['decommission', 'reject'] as const) {
      const d = await accepted();
      const jwt = await d.jwt('kernex-mqtt');
      const client = await connectDevice(mqttUrl, d, { password: jwt });
      const end = closed(client);
      const res =
        action === 'decommission'
          ? await api('DELETE', `${url}/api/v1/devices/${d.id}`, server.adminHeaders)
          : await api('POST', `${url}/api/v1/devices/${d.id}/reject`, server.adminHeaders);
      expect(res.status).toBe(200);
      await end;
      await client.endAsync(true);
      // The JWT that was cached a moment ago is refused now.
      expect(await refusalCode(connectDevice(mqttUrl, d, { password: jwt }))).toBe(5);
      await expect.poll(() => device(d.id)).toMatchObject({ online: false });
    }
  });
});
