-- Audit log of every change made through the API (DESIGN §6): who, what, target, when, result.
-- Written by an HTTP hook for every non-GET request that reached a route.
create table audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  actor_kind text not null check (actor_kind in ('apiKey', 'device', 'anonymous')),
  actor_id text,
  actor_name text,
  method text not null,
  route text not null,
  target_id text,
  status_code integer not null,
  result text not null check (result in ('success', 'failure')),
  error_code text,
  address text,
  request_id text
);
create index audit_log_actor_id on audit_log (actor_id, id);
