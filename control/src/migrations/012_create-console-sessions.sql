-- Console sessions (DESIGN §9): an API key exchanged for an HttpOnly cookie. Only a
-- SHA-256 of the cookie's 256-bit secret is kept. In PostgreSQL, not in memory, so every
-- node of a cluster checks the same rows, and a session ends everywhere at once.
-- Revoking the key ends its sessions too: verification joins api_keys.revoked_at.
create table console_sessions (
  id uuid primary key default gen_random_uuid(),
  token_hash text not null unique,
  api_key_id uuid not null references api_keys (id) on delete cascade,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  ended_at timestamptz
);
create index console_sessions_expires_at on console_sessions (expires_at);
