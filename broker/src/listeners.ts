import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { createWebSocketStream, WebSocketServer } from 'ws';

/** A bound listener: the server and the port it actually got (useful with port 0). */
export interface BoundListener {
  kind: 'mqtt' | 'mqtts' | 'ws';
  server: net.Server;
  port: number;
}

/**
 * Connections the kernel may hold for us before we accept them (capped by
 * net.core.somaxconn, 4096 on current kernels). Node's default is 511: when a
 * whole fleet reconnects at once (a restart, a node's devices failing over) the
 * queue overflows, the kernel drops the SYNs, and each device waits for its
 * SYN to be resent (1 s, then 3 s...) while the server sits idle.
 */
export const LISTEN_BACKLOG = 4096;

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
    server.listen({ port, host, backlog: LISTEN_BACKLOG });
  });
}

/** Closes a server, resolving once every connection has gone. */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/** Takes a new connection: its stream and the peer's address (the connection edge). */
export type HandleConnection = (conn: Duplex, address: string | undefined, req?: IncomingMessage) => void;

/** The listeners asked for, not yet listening: TCP always, TLS and WebSocket when their port is given. */
export function createListeners(
  handle: HandleConnection,
  options: { mqttPort: number; mqttsPort?: number; wsPort?: number; tls?: { cert: string; key: string }; wsMaxPayload: number },
): Array<{ kind: BoundListener['kind']; server: net.Server; port: number }> {
  const onSocket = (socket: net.Socket): void => handle(socket, socket.remoteAddress);
  const out: Array<{ kind: BoundListener['kind']; server: net.Server; port: number }> = [
    { kind: 'mqtt', server: net.createServer(onSocket), port: options.mqttPort },
  ];
  if (options.mqttsPort !== undefined) {
    if (!options.tls) throw new Error('mqttsPort needs tls { cert, key }');
    const server = tls.createServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, onSocket);
    // A failed handshake (wrong CA on the client, plain MQTT on the TLS port) is the client's problem, not ours.
    server.on('tlsClientError', () => {});
    out.push({ kind: 'mqtts', server, port: options.mqttsPort });
  }
  if (options.wsPort !== undefined) {
    const server = http.createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect with a WebSocket client\n');
    });
    // ws collects a whole message before handing it on: bound it like a packet before CONNECT.
    const wss = new WebSocketServer({ server, maxPayload: options.wsMaxPayload });
    wss.on('connection', (socket, req) => {
      const stream = createWebSocketStream(socket);
      stream.on('error', () => socket.terminate());
      handle(stream, req.socket.remoteAddress, req);
    });
    server.on('close', () => wss.close());
    out.push({ kind: 'ws', server, port: options.wsPort });
  }
  return out;
}
