-- Delta transfer (DESIGN §4). Each bundle's file index as the canonical JSON
-- text the server signed (text: its sha256 is part of what is signed), in its
-- own table so bundle lists do not carry it; bundles uploaded before have none.
-- And the deltas made, once per (from, to); the blob is in bundle storage under `blob_key`.
create table bundle_indexes (
  bundle_id uuid primary key references bundles (id) on delete cascade,
  text text not null,
  sha256 text not null,
  signature text not null
);
create table bundle_deltas (
  from_bundle_id uuid not null references bundles (id) on delete cascade,
  to_bundle_id uuid not null references bundles (id) on delete cascade,
  blob_key text not null,
  sha256 text not null,
  size bigint not null,
  -- Files of `to` the delta carries.
  files integer not null,
  created_at timestamptz not null default now(),
  primary key (from_bundle_id, to_bundle_id)
);
create index bundle_deltas_to on bundle_deltas (to_bundle_id);
