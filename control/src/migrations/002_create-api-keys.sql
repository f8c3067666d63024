-- Admin API keys (DESIGN §6). Only a SHA-256 of each key is kept; keys are
-- 256-bit random strings, so a fast hash is enough and lets a lookup use the index.
create table api_keys (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  role text not null check (role in ('viewer', 'operator', 'admin')),
  key_hash text not null unique,
  key_prefix text not null,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
