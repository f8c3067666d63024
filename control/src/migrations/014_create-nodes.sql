-- Cluster nodes (DESIGN §8): each node of an installation with KERNEX_REDIS_URL
-- records itself with a lease, renewed every few seconds and judged by the
-- database's clock (`now()`), never the node's. `generation` grows at each start
-- of a node id, so a session recorded by a node's earlier life is not its own.
-- Devices record the node and generation of the session that put them online:
-- only that node (in that generation) may mark them offline again, and a live
-- node sweeps devices whose node's lease has expired.
create table nodes (
  id text primary key,
  generation bigint not null default 1,
  started_at timestamptz not null default now(),
  lease_expires_at timestamptz not null,
  connections integer not null default 0,
  -- The backend of the node's reserved connection, which holds its advisory locks (who leads).
  backend_pid integer
);
alter table devices add column node_id text, add column node_generation bigint;
create index devices_online_node on devices (node_id) where online;
