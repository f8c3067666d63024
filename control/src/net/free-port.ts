import net from 'node:net';

/**
 * A loopback port that was free a moment ago: for children that must be told
 * a fixed port (embedded PostgreSQL, Mosquitto, a server restarted on the same
 * ports). Another process could take it in between; callers bind at once.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Whether `port` on `host` is taken, by binding it for a moment. The server
 * checks its fixed ports this way before it touches the database, so a second
 * server on the same ports refuses without disturbing the first (DESIGN §1).
 */
export async function portInUse(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ port, host, exclusive: true }, resolve));
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  await new Promise((resolve) => server.close(resolve));
  return undefined;
}
