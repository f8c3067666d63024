import type { Aedes, Client } from 'aedes';

/**
 * Two fields of Aedes 1.x that its type declarations leave out, read (never
 * written) here and nowhere else; direct-delivery.int.test.ts pins them
 * against the installed Aedes:
 * - `aedes.clients`: the current connection of each client id (a takeover
 *   replaces it once the older one is closed);
 * - `client.subscriptions`: the client's granted subscriptions by topic filter
 *   (restored ones of a persistent session included).
 */
interface AedesClients {
  readonly clients: Readonly<Record<string, Client | undefined>>;
}
interface ClientSubscriptions {
  readonly subscriptions: Readonly<Record<string, unknown>>;
}

/**
 * The connection a publish on `topic` can be handed to directly, with Aedes'
 * own `client.publish` (documented: "publish the given packet to this
 * client"): the client `clientId` when it is connected, not closing, and holds
 * a subscription to exactly `topic`. Otherwise undefined: publish through the
 * broker (`aedes.publish`), which also queues for an offline persistent
 * session.
 *
 * Why: a command on `kx/{id}/cmd` has one subscriber, and `client.publish`
 * queues it in that client's persistent session and delivers it as a broker
 * publish would, without what a broker publish does for any topic: matching
 * the topic against every subscription twice (the emitter's and the
 * persistence's), waiting for one of the emitter's 100 concurrent slots, the
 * retained-message step. At 10,000 commands that was most of the time Aedes
 * took to hand them out.
 */
export function subscribedClient(aedes: Aedes, clientId: string, topic: string): Client | undefined {
  const client = (aedes as unknown as AedesClients).clients[clientId];
  if (!client || !client.connected || client.closed) return undefined;
  return Object.hasOwn((client as unknown as ClientSubscriptions).subscriptions, topic) ? client : undefined;
}
