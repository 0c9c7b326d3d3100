-- Privileges on the schema itself; each part grants on its own objects in its own file.
-- Nothing in s3vl is usable by PUBLIC: access is by role.
REVOKE ALL ON SCHEMA s3vl FROM PUBLIC;
GRANT USAGE ON SCHEMA s3vl TO s3vl_reader, s3vl_admin;
GRANT s3vl_reader TO s3vl_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA s3vl REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
REVOKE SELECT ON s3vl.migrations FROM PUBLIC;
GRANT SELECT ON s3vl.migrations TO s3vl_admin;

CREATE OR REPLACE FUNCTION s3vl.installed_migrations()
RETURNS TABLE (name text, applied_at timestamptz, s3vl_version text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT name, applied_at, s3vl_version FROM s3vl.migrations ORDER BY name $$;
COMMENT ON FUNCTION s3vl.installed_migrations() IS 'Which incremental sql/ files this database has.';
GRANT EXECUTE ON FUNCTION s3vl.installed_migrations() TO s3vl_admin;
