-- Core of the schema. Nothing in s3vl is usable by PUBLIC: access is by role, and every grant is
-- in sql/idempotent/900-grants.sql, after everything it grants on exists. Functions created
-- here from now on start without PUBLIC's EXECUTE.
ALTER DEFAULT PRIVILEGES IN SCHEMA s3vl REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

CREATE OR REPLACE FUNCTION s3vl.installed_migrations()
RETURNS TABLE (name text, applied_at timestamptz, s3vl_version text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT name, applied_at, s3vl_version FROM s3vl.migrations ORDER BY name $$;
COMMENT ON FUNCTION s3vl.installed_migrations() IS 'Which incremental sql/ files this database has.';
