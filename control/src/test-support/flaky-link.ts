import net from 'node:net';

/**
 * A link that breaks once: a loopback proxy that ends the first connection
 * after it has carried `cutAfter` bytes back to the client, and records the
 * head of every request it forwards.
 */
export async function flakyLink(targetPort: number, cutAfter: number): Promise<{ port: number; heads: string[]; down: () => number; close(): Promise<void> }> {
  const heads: string[] = [];
  let down = 0;
  let cut = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let carried = 0;
    const breakable = !cut;
    client.once('data', (d: Buffer) => heads.push(d.toString('latin1').split('\r\n\r\n')[0]!));
    client.on('error', () => upstream.destroy()).on('close', () => upstream.destroy());
    upstream.on('error', () => client.destroy()).on('close', () => client.destroy());
    upstream.on('data', (d: Buffer) => {
      if (breakable && !cut && carried + d.length > cutAfter) {
        cut = true;
        client.write(d.subarray(0, cutAfter - carried), () => client.destroy());
        down += cutAfter - carried;
        upstream.destroy();
        return;
      }
      carried += d.length;
      down += d.length;
      client.write(d);
    });
    client.on('data', (d: Buffer) => upstream.write(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    heads,
    down: () => down,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
