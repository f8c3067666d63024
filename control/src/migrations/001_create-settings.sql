-- Server-wide values that must survive restarts (e.g. the server's signing key pair).
create table settings (
  key text primary key,
  value jsonb not null,
  updated_at timestamptz not null default now()
);
