import pino from 'pino';
import { Registry } from 'prom-client';
import { createBroker } from '@kernex/broker';

/**
 * The Kernex broker alone in its own process, for broker-level benchmark rows
 * next to Mosquitto (which is also its own process). Prints `{"port":N}` once
 * listening and stops on SIGTERM.
 */
const broker = await createBroker({ log: pino({ level: 'warn' }), registry: new Registry() });
await broker.listen({ host: '127.0.0.1', mqttPort: 0 });
process.stdout.write(JSON.stringify({ port: broker.listeners[0]!.port, pid: process.pid }) + '\n');
process.on('SIGTERM', () => {
  void broker.close().then(() => process.exit(0));
});
