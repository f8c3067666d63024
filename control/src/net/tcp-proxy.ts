import net from 'node:net';

/**
 * A loopback TCP proxy a test can cut and restore, to take a real dependency
 * (PostgreSQL, the broker) away from the code under test and give it back.
 * It also counts the bytes it carries (benchmarks of bytes on the wire).
 */
export interface TcpProxy {
  port: number;
  /** Payload bytes carried so far: `up` client → target, `down` target → client. */
  readonly bytes: { up: number; down: number };
  /** Drops every open connection and refuses new ones. */
  cut(): Promise<void>;
  /** Accepts connections again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const bytes = { up: 0, down: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (d: Buffer) => (bytes.up += d.length));
    upstream.on('data', (d: Buffer) => (bytes.down += d.length));
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      sockets.clear();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
  const port = await listen(0);
  return {
    port,
    bytes,
    cut: stop,
    restore: async () => {
      await listen(port);
    },
    close: stop,
  };
}
