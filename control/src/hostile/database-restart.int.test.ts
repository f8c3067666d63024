import { cmdTopic, eventsTopic, telemetryTopic, type Command, type ExecutionState } from '@kernex/shared';
import type { MqttClient } from 'mqtt';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { makeBundle } from '../../../shared/src/test-support/make-bundle.js';
import { api, makeDevice, register } from '../test-support/devices.js';
import { enrollmentToken } from '../test-support/fleet.js';
import { connectDevice, nextCommand } from '../test-support/mqtt.js';
import { spawnServer, type ServerProcess } from '../test-support/spawn-server.js';
import { serverEnv, type ServerEnv } from '../test-support/server-env.js';

const STATES: ExecutionState[] = ['received', 'downloading', 'installing', 'verifying', 'succeeded'];
/** The test's own connections: never terminated with the server's. */
const ADMIN_APP = 'kx-test-admin';

/**
 * The server's PostgreSQL backends end under it (a restart, pg_terminate_backend, a managed
 * database's failover) while its writers are inside transactions. postgres.js 3.4.9 crashed the
 * process from a timer there (porsager/postgres#1066, #1154, #1208; patches/postgres+3.4.9.patch):
 * the server must stay up, report ready again and store what devices sent afterwards.
 */
describe('a server whose database backends are terminated mid-transaction', () => {
  let setup: ServerEnv | undefined;
  let server: ServerProcess | undefined;
  let admin: postgres.Sql | undefined;
  let killer: postgres.Sql | undefined;
  let client: MqttClient | undefined;

  afterAll(async () => {
    await client?.endAsync(true);
    if (server && server.proc.exitCode === null && server.proc.signalCode === null) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
    await admin?.end();
    await killer?.end();
    await setup?.remove();
  });

  it('stays up, is ready again and stores the telemetry and events sent across every termination', { timeout: 180_000 }, async () => {
    setup = await serverEnv('db-restart');
    const { env, headers, httpUrl } = setup;
    const running = spawnServer(env);
    server = running;
    await running.ready;
    // Anything awaited while the server should be running fails at once if it exits instead.
    const exited = running.exited.then(({ code, signal }) => {
      throw new Error(`kernex server exited (${code ?? signal}): ${running.stderr}`);
    });
    exited.catch(() => {});
    const alive = <T>(p: Promise<T>): Promise<T> => Promise.race([p, exited]);

    const device = await makeDevice();
    expect((await register(httpUrl, device, { enrollmentToken: await enrollmentToken(httpUrl, headers, 1) })).body.status).toBe('accepted');
    client = await connectDevice(`mqtt://127.0.0.1:${env.KERNEX_MQTT_PORT}`, device, { clean: false });
    await client.subscribeAsync(cmdTopic(device.id), { qos: 1 });
    const command = nextCommand(client);
    const up = await fetch(`${httpUrl}/api/v1/bundles`, { method: 'POST', body: await makeBundle({ name: 'app', version: '1.0.0' }), headers: { ...headers, 'content-type': 'application/gzip' } });
    expect(up.status).toBe(201);
    const created = await api('POST', `${httpUrl}/api/v1/deployments`, headers, { bundleId: ((await up.json()) as { id: string }).id, target: { deviceIds: [device.id] } });
    expect(created.status).toBe(201);
    const { executionId } = await command;

    const options = { onnotice: () => {}, connection: { application_name: ADMIN_APP } };
    admin = postgres(setup.database.url, { ...options, max: 1 });
    killer = postgres(setup.database.url, { ...options, max: 1 });

    for (const [round, state] of STATES.entries()) {
      // Hold the tables the telemetry and event writers write, so each is caught inside its transaction.
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let locked!: () => void;
      const holding = new Promise<void>((resolve) => (locked = resolve));
      const held = admin.begin(async (tx) => {
        await tx`lock table device_telemetry, executions in exclusive mode`;
        locked();
        await gate;
      });
      await holding;

      await alive(client.publishAsync(telemetryTopic(device.id), JSON.stringify({ cpu: round }), { qos: 1 }));
      // The PUBACK of an event comes once it is stored: after the terminations.
      const stored = client.publishAsync(eventsTopic(device.id), JSON.stringify({ executionId, state, ts: Date.now() }), { qos: 1 });
      // Both tables have a server backend waiting on them: a writer's transaction is open on each.
      await expect
        .poll(
          async () =>
            (
              await killer!`
                select count(distinct l.relation)::int as n from pg_locks l join pg_stat_activity a using (pid)
                where not l.granted and l.relation in ('device_telemetry'::regclass, 'executions'::regclass) and a.application_name <> ${ADMIN_APP}`
            )[0]!.n,
          { timeout: 30_000 },
        )
        .toBe(2);

      const [terminated] = await killer`
        select count(*) filter (where pg_terminate_backend(pid))::int as n from pg_stat_activity
        where datname = current_database() and application_name <> ${ADMIN_APP} and pid <> pg_backend_pid()`;
      expect(terminated!.n).toBeGreaterThanOrEqual(2);
      release();
      await held;

      await alive(stored);
      expect(running.proc.exitCode).toBeNull();
    }

    await expect.poll(async () => (await alive(fetch(`${httpUrl}/readyz`))).status, { timeout: 60_000 }).toBe(200);
    const executions = await alive(api('GET', `${httpUrl}/api/v1/deployments/${created.body.id}/executions`, headers));
    expect(executions.body.items.map((e: { state: string }) => e.state)).toEqual(['succeeded']);
    await expect
      .poll(async () => (await alive(api('GET', `${httpUrl}/api/v1/devices/${device.id}/telemetry`, headers))).body.items.map((i: { telemetry: { cpu: number } }) => i.telemetry.cpu).sort(), { timeout: 60_000 })
      .toEqual([...STATES.keys()]);
    expect(running.proc.exitCode).toBeNull();
  });
});
