import fs from 'node:fs';
import { createRequire } from 'node:module';
import pino from 'pino';
import { onBrokenPipe, stopOnSignals } from '@kernex/shared';
import { loadAgentConfig, USAGE } from './config.js';
import { AgentConfigError } from './errors.js';
import { BundleInstaller } from './bundle/installer.js';
import { Device } from './device.js';

/** Longest an orderly stop may take before the process gives up waiting. */
const SHUTDOWN_LIMIT_MS = 8000;

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/**
 * `kernex-agent`: reads its configuration, runs one {@link Device}, stops in
 * order on SIGTERM/SIGINT (offline status, DISCONNECT, exit 0). A bad
 * configuration prints one line per problem and exits 1 (systemd then shows
 * why; retrying would not help). Everything else is retried, not fatal.
 */
async function main(): Promise<void> {
  // A closed output pipe (`kernex-agent --help | head -1`, a log reader that went away) is no
  // reason for a device to stop or to print a stack: the lines are dropped (pino does the same).
  onBrokenPipe(() => undefined);
  let config;
  try {
    config = loadAgentConfig();
  } catch (err) {
    if (!(err instanceof AgentConfigError)) throw err;
    for (const p of err.problems) process.stderr.write(`kernex-agent: ${p}\n`);
    process.exit(1);
  }
  if ('help' in config) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const log = pino({ name: 'kernex-agent', level: config.logLevel });
  let ca: Buffer | undefined;
  if (config.caFile) {
    try {
      ca = fs.readFileSync(config.caFile);
    } catch (err) {
      process.stderr.write(`kernex-agent: KERNEX_CA_FILE (--ca-file) cannot be read: ${(err as Error).message}\n`);
      process.exit(1);
    }
  }

  let installer: BundleInstaller;
  try {
    installer = await BundleInstaller.open({ stateDir: config.stateDir, log });
  } catch (err) {
    process.stderr.write(`kernex-agent: ${(err as Error).message}\n`);
    process.exit(1);
  }

  const device = new Device({
    server: config.server,
    stateDir: config.stateDir,
    enrollToken: config.enrollToken,
    keyType: config.keyType,
    telemetryS: config.telemetryS,
    keepaliveS: config.keepaliveS,
    reconnectMaxS: config.reconnectMaxS,
    ca,
    mqttUrl: config.mqttUrl,
    name: config.name,
    version,
    log,
    commands: installer,
    bundles: installer,
  });

  const signals = stopOnSignals({ log, limitMs: SHUTDOWN_LIMIT_MS, stop: () => device.stop() });

  if (config.testHooks) {
    // Test hook (KERNEX_TEST_HOOKS=1 only): each SIGUSR2 queues one self-test event,
    // so tests can produce events while the link is cut. See README "Test hooks".
    let n = 0;
    process.on('SIGUSR2', () => {
      n++;
      device.report({ executionId: `selftest-${process.pid}-${n}`, state: 'received', ts: Date.now() + device.clock.offset }).catch((err: Error) => log.error({ err: err.message }, 'self-test event failed'));
    });
  }

  log.info({ version, server: config.server, stateDir: config.stateDir, telemetryS: config.telemetryS, keepaliveS: config.keepaliveS }, 'kernex-agent starting');
  try {
    await device.start();
  } catch (err) {
    // Only local faults get here (state directory unusable): say so once, exit 1.
    log.fatal({ err: (err as Error).message }, 'agent cannot start');
    process.stderr.write(`kernex-agent: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (!signals.stopping()) log.info({ deviceId: device.deviceId }, 'kernex-agent running');
}

await main();
