-- Telemetry history (GET /api/v1/devices/{id}/telemetry), pruned after
-- KERNEX_TELEMETRY_RETENTION_DAYS. `at` is the server's receive time; `id`
-- breaks ties so pages by (at, id) neither skip nor repeat. No foreign key:
-- batches are written only for devices that exist, and retention removes
-- the rows of devices deleted since.
create table device_telemetry (
  id bigint generated always as identity primary key,
  device_id text not null,
  at timestamptz not null,
  data jsonb not null
);
create index device_telemetry_device_at on device_telemetry (device_id, at, id);
create index device_telemetry_at on device_telemetry (at);
