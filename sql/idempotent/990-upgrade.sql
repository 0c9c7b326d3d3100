-- Runs last on every install: bring what earlier installs left in line with this version.

-- Functions of earlier versions that this one no longer has.
DROP FUNCTION IF EXISTS s3vl._validate_sync(s3vl.syncs);

-- Every sync's generated functions, from its stored definition: a newer s3vl may generate
-- better SQL, and syncs of 0.1 had none (their owner is their source table's owner, set by
-- sql/incremental/203-sync-trust.sql). Trigger syncs also get their capture function again, and
-- triggers that still call another function (0.1's shared s3vl._capture()) are moved onto it.
DO $$
DECLARE
    s s3vl.syncs;
    fn regprocedure;
BEGIN
    FOR s IN SELECT * FROM s3vl.syncs x ORDER BY x.name LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid = s.source);
        BEGIN
            PERFORM s3vl._install_generated(s.name);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'sync %: its functions cannot be given to its owner %: %', s.name, s.owner, SQLERRM
                USING HINT = 'Re-declare the sync as the role that should own it: SELECT s3vl.alter_sync(name, redeclare => true).';
        END;
        CONTINUE WHEN s.capture <> 'trigger';
        PERFORM s3vl._install_capture(s.name);
        fn := format('s3vl.%I()', s3vl._capture_function_name(s.name))::regprocedure;
        IF (SELECT count(*) FROM pg_catalog.pg_trigger t
            WHERE t.tgrelid = s.source AND t.tgfoid = fn
              AND t.tgname IN (SELECT c.name FROM s3vl._capture_triggers(s.name) AS c)) <> 4 THEN
            BEGIN
                PERFORM s3vl._drop_triggers(s);
                PERFORM s3vl._install_triggers(s);
            EXCEPTION WHEN insufficient_privilege THEN
                -- only the table's owner may drop its triggers: the old ones keep working (the
                -- shared s3vl._capture() stays while any trigger uses it)
                RAISE WARNING 'sync %: capture triggers on % not upgraded: %', s.name, s.source, SQLERRM
                    USING HINT = format('Run s3vl install-sql as the owner of %s (or a member of its role).', s.source);
            END;
        END IF;
    END LOOP;
    -- the old shared capture function, once no trigger uses it any more
    IF to_regprocedure('s3vl._capture()') IS NOT NULL AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_trigger t WHERE t.tgfoid = to_regprocedure('s3vl._capture()')) THEN
        DROP FUNCTION s3vl._capture();
    END IF;
END
$$;
