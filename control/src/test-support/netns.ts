import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ip = (...args: string[]): Promise<unknown> => run('ip', args);

/**
 * A network namespace joined to this host by one veth pair on a private /30,
 * standing for another host: a process run in it (`wrap`) reaches this host
 * only at `hostIp`, through `forward`ed ports, and this host reaches it at
 * `nsIp`. `cut()` takes the host's end of the link down (the process keeps
 * running, its connections hang, as when a host falls off the network);
 * `restore()` brings it back. Needs root (`ip netns add`).
 */
export interface Netns {
  name: string;
  hostIp: string;
  nsIp: string;
  /** Prefix of a command run inside the namespace. */
  wrap: string[];
  /** A port on `hostIp` that carries connections to 127.0.0.1:`port` (PostgreSQL, Redis of the tests). */
  forward(port: number): Promise<number>;
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** Deletes the namespace (and so the veth pair) and closes the forwarders. */
  destroy(): Promise<void>;
}

export async function createNetns(): Promise<Netns> {
  const tag = randomBytes(3).toString('hex');
  const name = `kx-${tag}`;
  const hostIf = `kxh${tag}`;
  const nsIf = `kxn${tag}`;
  // 10.231.X.Y/30: X and the block from the tag, so namespaces made at once by other tests rarely meet.
  const third = parseInt(tag.slice(0, 2), 16);
  const base = (parseInt(tag.slice(2, 4), 16) % 64) * 4;
  const hostIp = `10.231.${third}.${base + 1}`;
  const nsIp = `10.231.${third}.${base + 2}`;
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  await ip('netns', 'add', name);
  try {
    await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    await ip('link', 'set', nsIf, 'netns', name);
    await ip('addr', 'add', `${hostIp}/30`, 'dev', hostIf);
    await ip('link', 'set', hostIf, 'up');
    await ip('-n', name, 'addr', 'add', `${nsIp}/30`, 'dev', nsIf);
    await ip('-n', name, 'link', 'set', nsIf, 'up');
    await ip('-n', name, 'link', 'set', 'lo', 'up');
  } catch (err) {
    await ip('netns', 'del', name).catch(() => {});
    await ip('link', 'del', hostIf).catch(() => {});
    throw err;
  }
  return {
    name,
    hostIp,
    nsIp,
    wrap: ['ip', 'netns', 'exec', name],
    async forward(port) {
      const server = net.createServer((client) => {
        const upstream = net.connect(port, '127.0.0.1');
        sockets.add(client).add(upstream);
        client.on('error', () => upstream.destroy()).on('close', () => upstream.destroy());
        upstream.on('error', () => client.destroy()).on('close', () => client.destroy());
        client.pipe(upstream).pipe(client);
      });
      servers.push(server);
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, hostIp, resolve));
      return (server.address() as net.AddressInfo).port;
    },
    async cut() {
      await ip('link', 'set', hostIf, 'down');
    },
    async restore() {
      await ip('link', 'set', hostIf, 'up');
    },
    async destroy() {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      await ip('netns', 'del', name).catch(() => {});
      await ip('link', 'del', hostIf).catch(() => {});
    },
  };
}
