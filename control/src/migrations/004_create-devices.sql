-- Registered devices (DESIGN §2). `id` is derived from the public key, so a key is
-- registered once. `online`/`last_seen_at` are written by the presence writer from
-- the broker's own connect and disconnect events.
create table devices (
  id text primary key check (id ~ '^[0-9a-f]{24}$'),
  public_key text not null,
  name text,
  status text not null check (status in ('pending', 'accepted', 'rejected', 'decommissioned')),
  tags text[] not null default '{}',
  hardware jsonb,
  bundles jsonb not null default '{}',
  online boolean not null default false,
  last_seen_at timestamptz,
  enrollment_token_id uuid references enrollment_tokens (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
-- Listing pages by (created_at, id); the tag filter uses the GIN index.
create index devices_created_at_id on devices (created_at, id);
create index devices_tags on devices using gin (tags);
