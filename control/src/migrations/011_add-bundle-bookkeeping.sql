-- A device's `bundles` follows what happened on it (DESIGN §5): set on
-- succeeded, put back on rolled_back, corrected by telemetry `b`.
-- `previous_version`: what the device had of the bundle's name before the
-- execution succeeded (null: nothing), so a rollback can put it back.
-- `bundles_at`: when an event last set `bundles`; telemetry received before it
-- (sent before the switch) does not undo it.
alter table executions add column previous_version text;
alter table devices add column bundles_at timestamptz;
