import type { Sql } from 'postgres';

/** PostgreSQL's SQLSTATE for insufficient_privilege (also "must be owner of ..."). */
const INSUFFICIENT_PRIVILEGE = '42501';

/**
 * Turns a migration that the server's role may not run into the one line an operator
 * needs: PostgreSQL 15 removed CREATE on schema public from PUBLIC, so a role made on a
 * managed service can read and write but not create tables (DESIGN §10). Returns
 * undefined for any other error.
 */
export async function explainMigrationPrivilege(sql: Sql, err: unknown): Promise<string | undefined> {
  if ((err as { code?: string }).code !== INSUFFICIENT_PRIVILEGE) return undefined;
  const [who] = await sql<{ role: string; schema: string; owner: string }[]>`
    select current_user as role, n.nspname as schema,
           case when pg_get_userbyid(n.nspowner) = 'pg_database_owner' then d.owner else pg_get_userbyid(n.nspowner) end as owner
      from pg_namespace n, (select pg_get_userbyid(datdba) as owner from pg_database where datname = current_database()) d
     where n.nspname = current_schema()`.catch(() => []);
  const role = who?.role ?? 'the server role';
  const schema = who?.schema ?? 'public';
  const owner = who?.owner ?? 'its owner';
  const reason = (err as Error).message;
  if (/must be owner/.test(reason)) {
    return `the database role '${role}' cannot apply a pending migration (${reason}): run \`kernex migrate\` with the owner's DATABASE_URL, then start the server again`;
  }
  return (
    `the database role '${role}' may not create tables in schema ${schema} (${reason}): ` +
    `run \`GRANT CREATE ON SCHEMA ${schema} TO ${role};\` as '${owner}', or apply the migrations with \`kernex migrate\` using the owner's DATABASE_URL`
  );
}
