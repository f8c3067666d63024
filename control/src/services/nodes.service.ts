import { decodeCursor, toPage, type Page } from '../paging.js';
import type { NodeRow } from '../store/nodes.pg.js';

/** A node as `GET /api/v1/nodes` answers it (DESIGN §8). */
export interface NodeView {
  id: string;
  startedAt: string;
  /** Null on a single node, which holds no lease. */
  leaseExpiresAt: string | null;
  leader: boolean;
  connections: number;
}

/** Where the nodes come from: the `nodes` table in a cluster, this process alone on a single node. */
export interface NodeSource {
  list(): Promise<Array<Omit<NodeRow, 'leaseExpiresAt'> & { leaseExpiresAt: Date | null }>>;
}

const isNodeId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 128;

/** The nodes of the installation, paged by id. */
export class NodesService {
  constructor(private readonly source: NodeSource) {}

  async list(limit: number, cursor: string | undefined): Promise<Page<NodeView>> {
    const after = cursor === undefined ? undefined : decodeCursor(cursor, isNodeId);
    const rows = (await this.source.list()).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).filter((r) => after === undefined || r.id > after);
    return toPage(rows.slice(0, limit + 1), limit, (r) => r.id, (r) => ({
      id: r.id,
      startedAt: r.startedAt.toISOString(),
      leaseExpiresAt: r.leaseExpiresAt?.toISOString() ?? null,
      leader: r.leader,
      connections: r.connections,
    }));
  }
}
