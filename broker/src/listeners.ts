import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** A bound listener: the server and the port it actually got (useful with port 0). */
export interface BoundListener {
  kind: 'mqtt' | 'mqtts' | 'ws';
  server: net.Server;
  port: number;
}

/**
 * Listens on `port` (0 = any free port) and resolves with the bound port, or
 * rejects with the listen error (EADDRINUSE, EACCES) so the caller can name it.
 */
export function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** Closes a server, resolving once every connection has gone. */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
