-- Uploaded bundles (DESIGN §4). The blob lives in bundle storage under `id`;
-- the row is written only after the blob is stored, and `(name, version)` is unique.
create table bundles (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  version text not null,
  sha256 text not null,
  size bigint not null,
  signature text not null,
  manifest jsonb not null,
  created_at timestamptz not null default now(),
  unique (name, version)
);
create index bundles_created_at on bundles (created_at desc, id desc);
