-- One execution per target device of a deployment (DESIGN §5). A command is a
-- row before it is a message: `sent_at` records the last publish, and
-- executions not yet reported by their device are published again when it connects.
create table executions (
  id uuid primary key default gen_random_uuid(),
  deployment_id uuid not null references deployments (id) on delete cascade,
  device_id text not null references devices (id) on delete cascade,
  phase integer not null,
  state text not null default 'queued' check (state in (
    'queued', 'sent', 'received', 'downloading', 'installing', 'verifying',
    'succeeded', 'failed', 'rolled_back', 'cancelled', 'timed_out', 'skipped')),
  error text,
  sent_count integer not null default 0,
  sent_at timestamptz,
  -- Rollback after an abort: asked (orchestrator), then published.
  rollback_requested boolean not null default false,
  rollback_sent_at timestamptz,
  cancel_sent_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (deployment_id, device_id)
);
create index executions_deployment_state on executions (deployment_id, state);
create index executions_device_state on executions (device_id, state);
