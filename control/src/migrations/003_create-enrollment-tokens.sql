-- Enrollment tokens (DESIGN §2): a device registering with a valid one is accepted at once.
-- Only a SHA-256 of each token is kept (tokens are 256-bit random strings); `uses_left`
-- is decremented in the same transaction that inserts the device.
create table enrollment_tokens (
  id uuid primary key default gen_random_uuid(),
  token_hash text not null unique,
  token_prefix text not null,
  uses integer not null check (uses >= 1),
  uses_left integer not null check (uses_left >= 0),
  tags text[] not null default '{}',
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
