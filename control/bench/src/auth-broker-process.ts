import { createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import { createBroker, MemoryDeviceDirectory } from '@kernex/broker';
import pino from 'pino';
import { Registry } from 'prom-client';

/**
 * The Kernex broker with authentication on, alone in its own process, for the
 * connect-storm benchmark. Devices come from the JSON file named by argv[2]
 * (`[{id, publicKeyPem}]`), all accepted, held in memory with their keys
 * parsed (as the server's PostgreSQL directory caches them), so the figure is
 * the broker's: JWT verification and Aedes, not a database round trip.
 * Prints `{"port":N}` once listening and stops on SIGTERM.
 */
const devices = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as Array<{ id: string; publicKeyPem: string }>;
const directory = new MemoryDeviceDirectory();
for (const d of devices) directory.set(d.id, { publicKey: createPublicKey(d.publicKeyPem), status: 'accepted' });
const broker = await createBroker({ log: pino({ level: 'warn' }), registry: new Registry(), directory });
await broker.listen({ host: '127.0.0.1', mqttPort: 0 });
process.stdout.write(JSON.stringify({ port: broker.listeners[0]!.port, pid: process.pid }) + '\n');
process.on('SIGTERM', () => {
  void broker.close().then(() => process.exit(0));
});
