import postgres, { type Sql } from 'postgres';

/** Advisory lock keys (two-int form): 'kx' and what is locked. */
const LOCK_CLASS = 0x6b78;
/** Held by the node that runs the orchestrator (DESIGN §8). */
const LEADER_LOCK = 1;
/** Node ids are locked in their own class, by hash, so two live nodes cannot share one. */
const NODE_LOCK_CLASS = 0x6b79;
/** NOTIFY channel that wakes the leader's orchestrator. */
const WAKE_CHANNEL = 'kernex_orchestrator';

/** A node as `GET /api/v1/nodes` lists it. */
export interface NodeRow {
  id: string;
  startedAt: Date;
  leaseExpiresAt: Date;
  leader: boolean;
  connections: number;
}

/**
 * SQL of a cluster node (DESIGN §8): the `nodes` table and the advisory locks
 * that make a node id and the orchestrator one node's at a time. The locks
 * live on one reserved connection, never recycled, so a killed node's locks
 * go with its connection. Leases are judged by the database's clock.
 */
export class NodesStore {
  private readonly conn: Sql;

  constructor(
    url: string,
    private readonly sql: Sql,
  ) {
    this.conn = postgres(url, { max: 1, idle_timeout: 0, max_lifetime: 0, connect_timeout: 5, onnotice: () => {} });
  }

  /** True when this process now holds the node id's lock (false: a live node has this id). */
  async lockNodeId(id: string): Promise<boolean> {
    const [row] = await this.conn<{ ok: boolean }[]>`select pg_try_advisory_lock(${NODE_LOCK_CLASS}, hashtext(${id})) as ok`;
    return row!.ok;
  }

  /** Whether the reserved connection still holds the node id's lock (a lost connection drops it). */
  async holdsNodeId(id: string): Promise<boolean> {
    const [row] = await this.conn<{ held: boolean }[]>`
      select exists(select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()
                      and classid = ${NODE_LOCK_CLASS} and objid = hashtext(${id})::oid and objsubid = 2 and granted) as held`;
    return row!.held;
  }

  /** Records a start of the node: a new generation and a fresh lease. */
  async claim(id: string, leaseMs: number): Promise<{ generation: number; startedAt: Date }> {
    const [row] = await this.conn<{ generation: string; startedAt: Date }[]>`
      insert into nodes (id, generation, started_at, lease_expires_at, backend_pid)
      values (${id}, 1, now(), now() + ${leaseMs} * interval '1 millisecond', pg_backend_pid())
      on conflict (id) do update set generation = nodes.generation + 1, started_at = now(),
        lease_expires_at = excluded.lease_expires_at, backend_pid = excluded.backend_pid, connections = 0
      returning generation, started_at as "startedAt"`;
    return { generation: Number(row!.generation), startedAt: row!.startedAt };
  }

  /**
   * Renews this generation's lease. `owned` false: a later start of the same id owns the row.
   * `lapsed`: the lease had ended before this renewal, so other nodes may have swept this
   * node's devices offline meanwhile. `databaseNow`: the database's clock, to correct this node's.
   */
  async renew(id: string, generation: number, leaseMs: number, connections: number): Promise<{ owned: boolean; lapsed: boolean; databaseNow?: Date }> {
    const [row] = await this.conn<{ lapsed: boolean; databaseNow: Date }[]>`
      with old as (select lease_expires_at <= now() as lapsed from nodes where id = ${id} and generation = ${generation} for update)
      update nodes set lease_expires_at = now() + ${leaseMs} * interval '1 millisecond', connections = ${connections},
        backend_pid = pg_backend_pid()
      from old
      where id = ${id} and generation = ${generation}
      returning old.lapsed, now() as "databaseNow"`;
    return { owned: Boolean(row), lapsed: row?.lapsed ?? false, databaseNow: row?.databaseNow };
  }

  /** Ends the lease at an orderly stop. */
  async expire(id: string, generation: number): Promise<void> {
    await this.conn`update nodes set lease_expires_at = now(), connections = 0 where id = ${id} and generation = ${generation}`;
  }

  /**
   * Marks offline every device whose session is on a node (or an earlier
   * generation of one) without a live lease; answers how many. Also forgets
   * nodes dead for a day.
   */
  async sweep(): Promise<number> {
    const rows = await this.sql`
      update devices d set online = false
      where d.online and d.node_id is not null
        and not exists (select 1 from nodes n where n.id = d.node_id and n.generation = d.node_generation and n.lease_expires_at > now())`;
    await this.sql`delete from nodes where lease_expires_at < now() - interval '1 day'`;
    return rows.count;
  }

  /** Takes the orchestrator's lock if it is free; true while this node holds it. */
  async tryLead(): Promise<boolean> {
    const [row] = await this.conn<{ held: boolean }[]>`
      select exists(select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()
                      and classid = ${LOCK_CLASS} and objid = ${LEADER_LOCK} and objsubid = 2 and granted) as held`;
    if (row!.held) return true;
    const [got] = await this.conn<{ ok: boolean }[]>`select pg_try_advisory_lock(${LOCK_CLASS}, ${LEADER_LOCK}) as ok`;
    return got!.ok;
  }

  /** The nodes, newest start first; `leader` is the one whose reserved connection holds the orchestrator's lock. */
  async list(): Promise<NodeRow[]> {
    return this.sql<NodeRow[]>`
      select n.id, n.started_at as "startedAt", n.lease_expires_at as "leaseExpiresAt", n.connections,
        exists(select 1 from pg_locks l where l.locktype = 'advisory' and l.classid = ${LOCK_CLASS} and l.objid = ${LEADER_LOCK}
                 and l.objsubid = 2 and l.granted and l.pid = n.backend_pid) and n.lease_expires_at > now() as leader
      from nodes n order by n.started_at desc, n.id`;
  }

  /** Wakes the leader's orchestrator (an event stored here, a deployment made here). */
  async wake(): Promise<void> {
    await this.sql`select pg_notify(${WAKE_CHANNEL}, '')`;
  }

  /** Calls `onWake` on every wake; resolves once listening. */
  async listenWake(onWake: () => void): Promise<{ unlisten(): Promise<void> }> {
    return this.sql.listen(WAKE_CHANNEL, () => onWake());
  }

  /** Closes the reserved connection: its locks go with it. */
  async close(): Promise<void> {
    await this.conn.end({ timeout: 1 });
  }
}
