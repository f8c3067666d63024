import type { Client } from 'aedes';

/**
 * Which MQTT connections each device has, to decide presence from the
 * broker's own events (DESIGN §3) in spite of session takeover: when a second
 * connection with the same clientId authenticates, Aedes closes the first and
 * fires `clientDisconnect` for it, sometimes after the newcomer's `client`
 * event (moscajs/aedes#153). A device is online while it has any live
 * authenticated connection, so the old socket's close never marks a device
 * offline that a newer connection is taking over.
 */
/** What {@link Sessions} needs of a connection (an Aedes `Client` fits it): its socket's close. */
export interface SessionClient {
  readonly conn: { once(event: 'close', listener: () => void): unknown };
}

export class Sessions<C extends SessionClient = Client> {
  /**
   * Authenticated, not yet closed connections per device: the connection
   * itself while it is the only one (nearly always; no Set per device), an
   * array during a takeover.
   */
  private readonly live = new Map<string, C | C[]>();
  /** Devices announced online (a connection reached CONNACK and has not all gone). */
  private readonly online = new Set<string>();

  /** A connection passed authentication; `onGone` runs once its socket closes. */
  add(deviceId: string, client: C, onGone: () => void): void {
    const held = this.live.get(deviceId);
    if (held === undefined) this.live.set(deviceId, client);
    else if (Array.isArray(held)) {
      if (!held.includes(client)) held.push(client);
    } else if (held !== client) this.live.set(deviceId, [held, client]);
    client.conn.once('close', onGone);
  }

  /** A connection got its CONNACK: true when it is still live (announce a session). */
  ready(deviceId: string, client: C): boolean {
    if (!this.clients(deviceId).includes(client)) return false;
    this.online.add(deviceId);
    return true;
  }

  /**
   * A connection ended (idempotent: both Aedes' `clientDisconnect` and the
   * socket's `close` report it). True when it was the device's last one and
   * the device had been announced online: announce it offline.
   */
  remove(deviceId: string, client: C): boolean {
    const held = this.live.get(deviceId);
    if (Array.isArray(held)) {
      const i = held.indexOf(client);
      if (i < 0) return false;
      held.splice(i, 1);
      if (held.length === 1) this.live.set(deviceId, held[0]!);
      return false;
    }
    if (held === undefined || held !== client) return false;
    this.live.delete(deviceId);
    return this.online.delete(deviceId);
  }

  /** True when the device has a live connection other than `client` (a takeover is under way). */
  hasOther(deviceId: string, client: C): boolean {
    return this.clients(deviceId).some((c) => c !== client);
  }

  /** The device's live connections. */
  clients(deviceId: string): C[] {
    const held = this.live.get(deviceId);
    return held === undefined ? [] : Array.isArray(held) ? [...held] : [held];
  }

  isOnline(deviceId: string): boolean {
    return this.online.has(deviceId);
  }

  /** The devices announced online. */
  onlineIds(): string[] {
    return [...this.online];
  }

  get onlineCount(): number {
    return this.online.size;
  }
}
