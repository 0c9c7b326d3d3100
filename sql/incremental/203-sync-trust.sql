-- The trust boundary of syncs (see README "Security model"):
-- * every sync records the role that declared it: its expressions run with that role's privileges,
--   in functions s3vl generates for it and hands to that role (sql/idempotent/210-sync-generated.sql);
--   syncs of older installs are given to their source table's owner, who controls the table anyway;
-- * the source's name is kept for messages once the table is gone (a dangling regclass prints as a number);
-- * a sync whose definition or privileges fail (not one row: all of them) is paused with its error;
-- * one sync per index: two syncs writing equal keys into one index would overwrite each other;
-- * s3vl_worker: the worker's role (the queue protocol), apart from s3vl_admin (the definitions).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 's3vl_worker') THEN
        CREATE ROLE s3vl_worker NOLOGIN;
    END IF;
END
$$;

ALTER TABLE s3vl.syncs ADD COLUMN owner regrole;
ALTER TABLE s3vl.syncs ADD COLUMN source_name text;
ALTER TABLE s3vl.syncs ADD COLUMN paused_until timestamptz;
ALTER TABLE s3vl.syncs ADD COLUMN last_error text;
ALTER TABLE s3vl.syncs ADD COLUMN last_error_at timestamptz;
UPDATE s3vl.syncs s SET
    owner = coalesce((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = s.source),
                     (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 's3vl')),
    source_name = coalesce((SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
                            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = s.source),
                           s.source::oid::text);
ALTER TABLE s3vl.syncs ALTER COLUMN owner SET NOT NULL, ALTER COLUMN source_name SET NOT NULL;
COMMENT ON COLUMN s3vl.syncs.owner IS 'The role that declared the sync: its expressions run with this role''s privileges.';
COMMENT ON COLUMN s3vl.syncs.paused_until IS 'Not leased before this time: the sync failed as a whole (definition, privileges, source gone).';

DO $$
DECLARE
    shared text;
BEGIN
    SELECT string_agg(format('index %s: syncs %s', index_name, names), '; ') INTO shared
    FROM (SELECT index_name, string_agg(name, ', ' ORDER BY name) AS names FROM s3vl.syncs
          GROUP BY index_name HAVING count(*) > 1) AS d;
    IF shared IS NOT NULL THEN
        RAISE EXCEPTION 'two syncs write one index, which overwrites vectors with equal keys (%)', shared
            USING HINT = 'Give each sync its own index (s3vl.alter_sync(name, index_name => ...)) or drop one, then install again.';
    END IF;
END
$$;
CREATE UNIQUE INDEX syncs_index_name_key ON s3vl.syncs (index_name);
