-- Run once by the postgres image on an empty volume (docker-compose.yml): a role with data
-- privileges only for the Kernex nodes, as a managed PostgreSQL service would hand out.
-- The `migrate` service creates the tables as the owner (kernex); default privileges give
-- kernex_app access to each table and sequence it creates.
create role kernex_app login password 'kernex_app';
grant connect on database kernex to kernex_app;
revoke create on schema public from public;
grant usage on schema public to kernex_app;
alter default privileges for role kernex in schema public grant select, insert, update, delete on tables to kernex_app;
alter default privileges for role kernex in schema public grant usage, select on sequences to kernex_app;
