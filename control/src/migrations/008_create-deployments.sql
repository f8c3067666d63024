-- Deployments (DESIGN §5): one bundle to a set of devices, in phases. The whole
-- rollout state is here, so an orchestrator that dies and restarts carries on.
-- `bundle_id` is cleared if the bundle is deleted later (a running deployment
-- keeps its bundle: the API refuses that delete); name and version stay for history.
create table deployments (
  id uuid primary key default gen_random_uuid(),
  bundle_id uuid references bundles (id) on delete set null,
  bundle_name text not null,
  bundle_version text not null,
  target jsonb not null,
  rollout jsonb not null,
  timeout_s integer not null check (timeout_s > 0),
  status text not null default 'running' check (status in ('running', 'completed', 'aborted', 'cancelled')),
  phase integer not null default 0,
  -- When every execution of the current phase had ended; the next starts waitS later.
  phase_settled_at timestamptz,
  reason text,
  created_by text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index deployments_created_at on deployments (created_at desc, id desc);
create index deployments_running on deployments (id) where status = 'running';
