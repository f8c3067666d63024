import net from 'node:net';

/**
 * A loopback TCP proxy that, once armed with `hold(match)`, holds back the
 * first chunk a client sends that contains `match`, and everything after it
 * on that one connection, until `release()`. Every other connection carries on:
 * a test's way to make one statement of a process (a batched write naming a
 * device) reach PostgreSQL late while the rest of the process works.
 */
export interface HoldingProxy {
  port: number;
  /** Resolves once a chunk containing `match` (latin1) has been caught and held. */
  hold(match: string): Promise<void>;
  /** Sends on what was held and carries that connection normally again. */
  release(): void;
  close(): Promise<void>;
}

export async function startHoldingProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<HoldingProxy> {
  const sockets = new Set<net.Socket>();
  let trap: { match: string; caught: () => void } | undefined;
  let held: { upstream: net.Socket; chunks: Buffer[] } | undefined;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.on('data', (d: Buffer) => client.write(d));
    client.on('data', (d: Buffer) => {
      if (held?.upstream === upstream) return void held.chunks.push(d);
      if (trap && d.toString('latin1').includes(trap.match)) {
        held = { upstream, chunks: [d] };
        const { caught } = trap;
        trap = undefined;
        return caught();
      }
      upstream.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    hold: (match) => new Promise<void>((caught) => (trap = { match, caught })),
    release() {
      const h = held;
      held = undefined;
      for (const chunk of h?.chunks ?? []) h!.upstream.write(chunk);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
