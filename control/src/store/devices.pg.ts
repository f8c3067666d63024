import { isDeviceId, type DeviceStatus } from '@kernex/shared';
import type { Sql } from 'postgres';

/** A device as the API shows it (DESIGN §2). */
export interface DeviceRow {
  id: string;
  name: string | null;
  status: DeviceStatus;
  online: boolean;
  lastSeenAt: Date | null;
  tags: string[];
  hardware: Record<string, unknown> | null;
  bundles: Record<string, string>;
  /** The latest telemetry the device sent, and when the server received it. */
  telemetry: Record<string, unknown> | null;
  telemetryAt: Date | null;
  createdAt: Date;
}

/** What authentication needs: the key and the status. */
export interface DeviceCredentials {
  id: string;
  publicKey: string;
  status: DeviceStatus;
}

/** A new device; with a token hash the token is used up by one, in the same transaction. */
export interface NewDevice {
  id: string;
  publicKey: string;
  name: string | undefined;
  hardware: Record<string, unknown> | undefined;
  tokenHash: string | undefined;
}

export interface DeviceFilter {
  status?: DeviceStatus;
  online?: boolean;
  tag?: string;
  /** A prefix of the id or a part of the name, case-insensitive (DESIGN §2). */
  q?: string;
}

/** One presence change for the batched write. */
export interface PresenceChange {
  deviceId: string;
  online: boolean;
  at: Date;
  /**
   * In a cluster: a session this node already recorded, written online again after its lease
   * had lapsed (other nodes may have swept it offline). Applies only while the device's record
   * still names this node's session: a device that connected elsewhere meanwhile stays there.
   */
  reassert?: boolean;
}

/** `q` as a LIKE pattern that matches itself only: `%`, `_` and `\\` are escaped. */
const likePattern = (q: string): string => q.replace(/[\\%_]/g, (c) => `\\${c}`);

const COLUMNS =
  'id, name, status, online, last_seen_at as "lastSeenAt", tags, hardware, bundles, telemetry, telemetry_at as "telemetryAt", created_at as "createdAt"';

/** Why an insert did not happen. */
export type InsertOutcome =
  | { kind: 'inserted'; device: DeviceRow }
  | { kind: 'exists' }
  | { kind: 'token_invalid' };

/** Thrown inside a transaction to roll it back and answer `outcome` instead. */
class Rollback extends Error {
  constructor(readonly outcome: InsertOutcome | { kind: 'not_pending' }) {
    super(outcome.kind);
  }
}

/** SQL for `devices`; the only place that touches the table. */
export class DevicesStore {
  /** In a cluster (DESIGN §8): the node and generation whose sessions this process writes. */
  private node: { id: string; generation: number } | undefined;

  constructor(private readonly sql: Sql) {}

  /** From now on presence is written as this node's: a disconnect only undoes this node's own connect. */
  writeAsNode(node: { id: string; generation: number }): void {
    this.node = node;
  }

  async get(id: string): Promise<DeviceRow | undefined> {
    const [row] = await this.sql<DeviceRow[]>`select ${this.sql.unsafe(COLUMNS)} from devices where id = ${id}`;
    return row;
  }

  /**
   * The key and status of a device; undefined for an unknown one. An id that is not one
   * (24 lowercase hex, DESIGN §2) is unknown without a query: a NUL in an MQTT clientId or a
   * JWT `sub` would make PostgreSQL fail the lookup, a 500 or CONNACK 3 instead of a refusal.
   */
  async credentials(id: string): Promise<DeviceCredentials | undefined> {
    if (!isDeviceId(id)) return undefined;
    const [row] = await this.sql<DeviceCredentials[]>`select id, public_key as "publicKey", status from devices where id = ${id}`;
    return row;
  }

  /**
   * Inserts a device, `accepted` with the token's tags when a token is given
   * (and still usable), otherwise `pending`. The token's use count and the
   * insert commit together or not at all: a lost race on the same key
   * (`exists`) or a spent token leaves both tables unchanged.
   */
  async insert(d: NewDevice): Promise<InsertOutcome> {
    try {
      return await this.sql.begin(async (tx) => {
        let tags: string[] = [];
        let tokenId: string | null = null;
        if (d.tokenHash !== undefined) {
          const [token] = await tx<{ id: string; tags: string[] }[]>`
            update enrollment_tokens set uses_left = uses_left - 1
            where token_hash = ${d.tokenHash} and revoked_at is null and expires_at > now() and uses_left > 0
            returning id, tags`;
          if (!token) throw new Rollback({ kind: 'token_invalid' });
          tags = token.tags;
          tokenId = token.id;
        }
        const [device] = await tx<DeviceRow[]>`
          insert into devices (id, public_key, name, status, tags, hardware, enrollment_token_id)
          values (${d.id}, ${d.publicKey}, ${d.name ?? null}, ${tokenId ? 'accepted' : 'pending'}, ${tx.array(tags)},
                  ${d.hardware === undefined ? null : tx.json(d.hardware as never)}, ${tokenId})
          on conflict (id) do nothing
          returning ${tx.unsafe(COLUMNS)}`;
        if (!device) throw new Rollback({ kind: 'exists' });
        return { kind: 'inserted', device } as InsertOutcome;
      });
    } catch (err) {
      if (err instanceof Rollback) return err.outcome as InsertOutcome;
      throw err;
    }
  }

  /** Accepts a pending device with a token (re-registration with a token), in one transaction. */
  async acceptWithToken(id: string, tokenHash: string): Promise<DeviceRow | 'token_invalid' | undefined> {
    try {
      return await this.sql.begin(async (tx) => {
        const [token] = await tx<{ id: string; tags: string[] }[]>`
          update enrollment_tokens set uses_left = uses_left - 1
          where token_hash = ${tokenHash} and revoked_at is null and expires_at > now() and uses_left > 0
          returning id, tags`;
        if (!token) return 'token_invalid' as const;
        const [device] = await tx<DeviceRow[]>`
          update devices set status = 'accepted', tags = ${tx.array(token.tags)}, enrollment_token_id = ${token.id}, updated_at = now()
          where id = ${id} and status = 'pending'
          returning ${tx.unsafe(COLUMNS)}`;
        // Not pending any more (raced with an operator): give the use back by rolling back.
        if (!device) throw new Rollback({ kind: 'not_pending' });
        return device;
      });
    } catch (err) {
      if (err instanceof Rollback) return undefined;
      throw err;
    }
  }

  /**
   * One page in creation order. `afterId` is the last id of the previous page;
   * `(created_at, id)` is unique, so pages neither skip nor repeat rows.
   */
  async list(filter: DeviceFilter, limit: number, afterId: string | undefined): Promise<DeviceRow[]> {
    const sql = this.sql;
    return sql<DeviceRow[]>`
      select ${sql.unsafe(COLUMNS)} from devices
      where true
        ${filter.status ? sql`and status = ${filter.status}` : sql``}
        ${filter.online === undefined ? sql`` : sql`and online = ${filter.online}`}
        ${filter.tag ? sql`and tags @> ${sql.array([filter.tag])}` : sql``}
        ${filter.q ? sql`and (id like ${likePattern(filter.q.toLowerCase())} || '%' or name ilike '%' || ${likePattern(filter.q)} || '%')` : sql``}
        ${afterId ? sql`and (created_at, id) > (select created_at, id from devices where id = ${afterId})` : sql``}
      order by created_at, id
      limit ${limit}`;
  }

  async update(id: string, patch: { name?: string; tags?: string[] }): Promise<DeviceRow | undefined> {
    const sql = this.sql;
    const [row] = await sql<DeviceRow[]>`
      update devices set
        name = ${patch.name === undefined ? sql`name` : sql`${patch.name}`},
        tags = ${patch.tags === undefined ? sql`tags` : sql`${sql.array(patch.tags)}`},
        updated_at = now()
      where id = ${id}
      returning ${sql.unsafe(COLUMNS)}`;
    return row;
  }

  /** Sets the status when the current one is in `from`; undefined when the device is unknown or in another status. */
  async transition(id: string, from: readonly DeviceStatus[], to: DeviceStatus): Promise<DeviceRow | undefined> {
    const [row] = await this.sql<DeviceRow[]>`
      update devices set status = ${to}, updated_at = now()
      where id = ${id} and status = any(${this.sql.array(from as DeviceStatus[])})
      returning ${this.sql.unsafe(COLUMNS)}`;
    return row;
  }

  /** At start-up: the broker's memory is gone, so nobody is connected. */
  async markAllOffline(): Promise<number> {
    const rows = await this.sql`update devices set online = false where online`;
    return rows.count;
  }

  /** Online devices and the node holding their sessions (DESIGN §8), to seed a node's map of where devices are. */
  async sessionNodes(): Promise<Array<{ deviceId: string; nodeId: string }>> {
    return this.sql<Array<{ deviceId: string; nodeId: string }>>`
      select id as "deviceId", node_id as "nodeId" from devices where online and node_id is not null`;
  }

  /**
   * Of these devices, the ones whose latest recorded session is this node's, this
   * life of it (DESIGN §8): online, with this node's id and generation. A device
   * that connected to another node later is not, whatever this node's broker
   * still holds. Empty outside a cluster.
   */
  async recordedHere(deviceIds: readonly string[]): Promise<string[]> {
    const node = this.node;
    if (!node || deviceIds.length === 0) return [];
    const rows = await this.sql<Array<{ id: string }>>`
      select id from devices
      where id = any(${this.sql.array([...deviceIds])}::text[]) and online
        and node_id = ${node.id} and node_generation = ${node.generation}::bigint`;
    return rows.map((r) => r.id);
  }

  /** Writes many presence changes in one statement (one per device: callers coalesce). */
  async writePresence(changes: readonly PresenceChange[]): Promise<void> {
    if (changes.length === 0) return;
    const sql = this.sql;
    const node = this.node;
    if (node) {
      // DESIGN §8: a connect records this node's session; a disconnect ends it only while it is
      // still this node's (a takeover on another node, or a later life of this node, leaves it).
      // Nodes write in batches, so a node's connect can reach the database after a later connect
      // of the same device on another node: an online session of another node (or an earlier life
      // of this one) is replaced only by a connect at least as recent as the one that recorded it
      // (`last_seen_at` of an online device). Times are the database's (the writer corrects the node's clock).
      // A reassert keeps the time of the connect it re-asserts: stamped with its own (later) time it
      // would outrank a connect made meanwhile on another node whose batch lands after it.
      await sql`
        update devices d set online = v.online, last_seen_at = case when v.reassert then d.last_seen_at else v.at end,
          node_id = case when v.online then ${node.id} else d.node_id end,
          node_generation = case when v.online then ${node.generation}::bigint else d.node_generation end
        from unnest(${sql.array(changes.map((c) => c.deviceId))}::text[],
                    ${sql.array(changes.map((c) => c.online))}::boolean[],
                    ${sql.array(changes.map((c) => c.at.toISOString()))}::timestamptz[],
                    ${sql.array(changes.map((c) => c.reassert === true))}::boolean[]) as v(id, online, at, reassert)
        where d.id = v.id
          and case when v.reassert then d.node_id = ${node.id} and d.node_generation = ${node.generation}::bigint
              when v.online
                then not d.online or d.node_id is null or d.last_seen_at is null or v.at >= d.last_seen_at
                     or (d.node_id = ${node.id} and d.node_generation = ${node.generation}::bigint)
                else d.node_id = ${node.id} and d.node_generation = ${node.generation}::bigint end`;
      return;
    }
    await sql`
      update devices d set online = v.online, last_seen_at = v.at
      from unnest(${sql.array(changes.map((c) => c.deviceId))}::text[],
                  ${sql.array(changes.map((c) => c.online))}::boolean[],
                  ${sql.array(changes.map((c) => c.at.toISOString()))}::timestamptz[]) as v(id, online, at)
      where d.id = v.id`;
  }
}
