/**
 * Which node holds each device's session, as this node has heard it (DESIGN §8),
 * so a command crosses Redis to that one node instead of to every node
 * (moscajs/aedes#703: one Redis carries every message sent to it).
 *
 * Learned from the broker's own announcement of every new connection (Aedes'
 * `$SYS/{broker}/new/clients`, which crosses to every node anyway for takeovers),
 * in the order Redis delivers it, and from a node's list of the devices it holds
 * when its Redis returns; an entry goes when the node it names announces the
 * device's disconnection (`$SYS/{broker}/disconnect/clients`), so the map holds
 * about the connected devices, not every device ever heard of. Seeded from
 * PostgreSQL's presence at start and after a Redis outage, for devices not
 * heard of since. A hint, never the truth:
 * a node that gets a command for a device it no longer holds sends it on to
 * every node, and a command that reaches no node is healed from the database
 * when the device subscribes.
 */
export class DeviceOwners {
  private readonly owners = new Map<string, string>();

  constructor(private readonly self: string) {}

  get size(): number {
    return this.owners.size;
  }

  /** The node that last announced a connection of the device; undefined when none was heard of. */
  ownerOf(deviceId: string): string | undefined {
    return this.owners.get(deviceId);
  }

  /** True when the last connection of the device heard of is this node's. */
  isMine(deviceId: string): boolean {
    return this.owners.get(deviceId) === this.self;
  }

  /** `nodeId` announced a new connection of the device: it holds the session now. */
  connected(deviceId: string, nodeId: string): void {
    this.owners.set(deviceId, nodeId);
  }

  /**
   * `nodeId` announced the end of a connection of the device. Forgotten only
   * while the entry still names that node: a device that moved from A to B may
   * have B's connect heard before A's disconnect, and B's entry stays. (A
   * takeover on one node never reaches here: the node does not announce the old
   * connection's end while it holds a newer one, see RedisBus.send.)
   */
  disconnected(deviceId: string, nodeId: string): void {
    if (this.owners.get(deviceId) === nodeId) this.owners.delete(deviceId);
  }

  /**
   * Forgets what was heard (announcements may have been lost while Redis was
   * away) and starts again from the devices connected here now.
   */
  reset(connectedHere: Iterable<string>): void {
    this.owners.clear();
    for (const id of connectedHere) this.owners.set(id, this.self);
  }

  /**
   * Fills in devices not heard of yet from the database's presence (device,
   * node). Never overrides an announcement, and never claims a device for this
   * node: only this node's broker knows what it holds.
   */
  seed(entries: Iterable<{ deviceId: string; nodeId: string }>): void {
    for (const { deviceId, nodeId } of entries) {
      if (nodeId !== this.self && !this.owners.has(deviceId)) this.owners.set(deviceId, nodeId);
    }
  }
}
