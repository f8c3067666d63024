-- Delta transfer (DESIGN §4). Each bundle's file index as the canonical JSON
-- text the server signed (kept as text: its sha256 is part of what is signed),
-- null for bundles uploaded before; and the deltas made, once per (from, to).
-- The delta blob lives in bundle storage under `blob_key`.
alter table bundles add column file_index text, add column index_sha256 text, add column index_signature text;
create table bundle_deltas (
  from_bundle_id uuid not null references bundles (id) on delete cascade,
  to_bundle_id uuid not null references bundles (id) on delete cascade,
  blob_key text not null,
  sha256 text not null,
  size bigint not null,
  -- Files of `to` the delta carries, of all its files.
  files integer not null,
  created_at timestamptz not null default now(),
  primary key (from_bundle_id, to_bundle_id)
);
create index bundle_deltas_to on bundle_deltas (to_bundle_id);
