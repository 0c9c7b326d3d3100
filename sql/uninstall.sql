-- Remove every trace of s3vl from this database: the schema (with the capture triggers that
-- depend on its functions), the replication slots it created, and its roles when no other
-- database still uses them. Run by `s3vl uninstall-sql`.
-- the logical capture slot (s3vl.capture_slot_name(), sql/idempotent/200-sync-sql.sql)
SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots
WHERE slot_name = 's3vl_capture_' || (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND NOT active;
DROP SCHEMA IF EXISTS s3vl CASCADE;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['s3vl_admin', 's3vl_worker', 's3vl_reader'] LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('DROP OWNED BY %I', r);
            BEGIN
                EXECUTE format('DROP ROLE %I', r);
            EXCEPTION WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role % kept: another database still uses it', r;
            END;
        END IF;
    END LOOP;
END
$$;
