-- Core of the s3vl schema: the roles that hold its privileges.
-- Roles are cluster-wide, so they are created only when missing (a second database on the
-- same cluster shares them). Users get them with GRANT s3vl_reader TO app_user.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 's3vl_reader') THEN
        CREATE ROLE s3vl_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 's3vl_admin') THEN
        CREATE ROLE s3vl_admin NOLOGIN;
    END IF;
END
$$;
COMMENT ON SCHEMA s3vl IS 'Amazon S3 Vectors sync and query interface (s3vl).';
