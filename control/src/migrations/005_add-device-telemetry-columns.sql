-- The latest telemetry of each device, shown on the device resource
-- (GET /api/v1/devices/{id}: `telemetry`, `telemetryAt`).
alter table devices
  add column telemetry jsonb,
  add column telemetry_at timestamptz;
