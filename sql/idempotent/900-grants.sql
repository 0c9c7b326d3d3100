-- Every privilege in the s3vl schema, after everything it grants on exists: the security model
-- of README "Security model", in one place to audit. Three roles:
--   s3vl_reader  queries vectors and sees the status views;
--   s3vl_admin   (a reader too) configures the query Lambda, registers indexes, declares syncs;
--   s3vl_worker  runs the worker's queue protocol, capture and reconcile.
-- No role holds INSERT, UPDATE or DELETE on s3vl's tables: every write goes through a function
-- that checks it. SECURITY DEFINER functions are not granted where only s3vl's own functions call
-- them (the generators, s3vl._store_sync, s3vl._as_owner).

REVOKE ALL ON SCHEMA s3vl FROM PUBLIC;
GRANT USAGE ON SCHEMA s3vl TO s3vl_reader, s3vl_admin, s3vl_worker;
GRANT s3vl_reader TO s3vl_admin;

-- === tables and views ========================================================================
REVOKE ALL ON ALL TABLES IN SCHEMA s3vl FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA s3vl FROM PUBLIC;
REVOKE ALL ON s3vl.syncs, s3vl.outbox, s3vl.sync_state, s3vl.reconcile_runs, s3vl.indexes, s3vl.config,
    s3vl.migrations, s3vl.reconcile_snapshot, s3vl.reconcile_cycles FROM s3vl_admin, s3vl_worker, s3vl_reader;
REVOKE ALL ON SEQUENCE s3vl.reconcile_runs_id_seq FROM s3vl_admin, s3vl_worker;
GRANT SELECT ON s3vl.indexes TO s3vl_reader, s3vl_worker;
GRANT SELECT ON s3vl.syncs, s3vl.outbox, s3vl.sync_state, s3vl.reconcile_runs, s3vl.migrations TO s3vl_admin, s3vl_worker;
GRANT SELECT ON s3vl.reconcile_snapshot, s3vl.reconcile_cycles TO s3vl_worker;
GRANT SELECT ON s3vl.sync_status, s3vl.sync_failures TO s3vl_reader, s3vl_worker;

-- === functions ===============================================================================
-- (the functions s3vl generates for a sync belong to its declarer, who grants them to s3vl only)
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 's3vl'::regnamespace AND p.proowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    END LOOP;
END
$$;

-- readers: the query interface and what the status views call as their reader
GRANT EXECUTE ON FUNCTION
    s3vl.error_classes(), s3vl.validate_config(), s3vl.list_indexes(),
    s3vl.query_vectors(double precision[], text, text, integer, boolean, jsonb, text[], text, integer),
    s3vl.query_text(text, text, integer, jsonb, boolean, boolean, text[], text, integer),
    s3vl.similar_to(text, text, integer, jsonb, boolean, boolean),
    s3vl.get_vectors(text[], text, text, boolean, boolean),
    s3vl.list_vectors(text, text, integer, text, boolean, boolean, integer, integer),
    s3vl.embedding_models(), s3vl.embedding_model(text), s3vl.sync_key_sql(text, text), s3vl.sync_text_sql(text, text),
    s3vl.sync_hash_sql(text, text), s3vl.sync_metadata_sql(text, text), s3vl.capture_slot_name(),
    s3vl._may_read_source(regclass, text[]),
    -- the helpers sync_*_sql build with
    s3vl._sync(text), s3vl._key_sql(text[], text), s3vl._text_sql(text, text), s3vl._hash_of_sql(text),
    s3vl._metadata_sql(regclass, text[], text), s3vl._metadata_value_sql(regtype, text, text)
    TO s3vl_reader;

-- admins: configuration, the registry and sync definitions. create_sync, alter_sync, drop_sync
-- and the reindex steps run as their caller (to check the expression as its author, and to
-- attach or detach triggers with the caller's rights on the table); the parts that write s3vl's
-- tables are the SECURITY DEFINER functions granted here with them.
GRANT EXECUTE ON FUNCTION
    s3vl.configure(text, text, integer, boolean), s3vl.get_config(), s3vl.installed_migrations(),
    s3vl.register_index(text, text, text, text), s3vl.unregister_index(text),
    s3vl.create_sync(text, regclass, text, text, text[], text, int, text, int, int, text[], boolean, boolean, text, int, boolean),
    s3vl.alter_sync(text, text, text[], text, int, int, int, boolean, text, int, text, boolean, boolean),
    s3vl.drop_sync(text, boolean),
    s3vl._check_expression(regclass, text), s3vl._check_readable(s3vl.syncs), s3vl._declare_sync(s3vl.syncs, text[]),
    s3vl._alter_declared(s3vl.syncs, text[], boolean), s3vl._undeclare_sync(text), s3vl._live_sync(text),
    s3vl._install_triggers(s3vl.syncs), s3vl._drop_triggers(s3vl.syncs), s3vl._capture_triggers(text),
    s3vl._capture_function_name(text),
    s3vl.reindex_shadow_name(text), s3vl.reindex_prepare(text, text, text, int, text), s3vl.reindex_switch(text),
    s3vl.reindex_abort(text), s3vl._reindex_declare(text, text, text, int, text), s3vl._reindex_switch(text),
    s3vl._reindex_abort(text),
    s3vl.enqueue(text, text[]), s3vl.resync(text), s3vl.retry_failed(text)
    TO s3vl_admin;

-- the owner of a sync's generated functions is one of its admins: what those functions call
GRANT EXECUTE ON FUNCTION s3vl._finite(double precision, text), s3vl._finite(numeric, text),
    s3vl._finite_array(double precision[], text), s3vl._finite_array(numeric[], text)
    TO s3vl_admin, s3vl_worker;

-- the worker: the queue protocol (sql/idempotent/240-sync-queue.sql), logical capture (which
-- also needs the login's REPLICATION attribute) and reconcile
GRANT EXECUTE ON FUNCTION
    s3vl.lease(text, int, double precision, text), s3vl.load_v2(text, text[]), s3vl.load_rows(text, text[]),
    s3vl.begin_write(text, jsonb), s3vl.complete(text, text, jsonb), s3vl.fail(text, text, jsonb, double precision),
    s3vl.release(text, text, text[]), s3vl.extend_lease(text, text, text[], double precision),
    s3vl.pause_sync(text, text, double precision), s3vl.retry_failed(text), s3vl.enqueue(text, text[]),
    s3vl.resync(text), s3vl._sync(text),
    s3vl.capture_slot_name(), s3vl.capture_logical(int), s3vl.capture_consume(pg_lsn),
    s3vl._change_key_sql(s3vl.syncs, text), s3vl._key_sql(text[], text), s3vl._may_read_source(regclass, text[]),
    s3vl.reconcile_started(text, timestamptz, boolean), s3vl.reconcile_finished(bigint, timestamptz, jsonb),
    s3vl.reconcile_source(text), s3vl.reconcile_source_ids(text), s3vl.reconcile_source_rows(text, text[]),
    s3vl.reconcile_fix_state(text, timestamptz, jsonb),
    s3vl.reconcile_forget(text, timestamptz, text[]), s3vl.reconcile_forget_metadata(text, timestamptz, text[]),
    s3vl.reconcile_cycle(text), s3vl.reconcile_snapshot_clear(text, int[]),
    s3vl.reconcile_snapshot_put(text, text[], int[], text[], text[], text[], text[], int[], text[], boolean[]),
    s3vl.reconcile_snapshot_forget(text, text[]),
    s3vl.reconcile_cycle_advance(text, int, int[], timestamptz, jsonb, timestamptz), s3vl.installed_migrations()
    TO s3vl_worker;

-- Workers of s3vl 0.1 ran as s3vl_admin and call the queue protocol's v1 functions: they keep
-- working while a rolling deploy replaces them. Deprecated: 0.3 revokes these from s3vl_admin
-- (after the upgrade, REVOKE them by hand to take them away now).
GRANT EXECUTE ON FUNCTION
    s3vl.lease(text, int, double precision, text), s3vl.load_rows(text, text[]), s3vl.begin_write(text, jsonb),
    s3vl.complete(text, text, jsonb), s3vl.fail(text, text, jsonb, double precision),
    s3vl.release(text, text, text[]), s3vl.extend_lease(text, text, text[], double precision),
    s3vl.capture_logical(int), s3vl.capture_consume(pg_lsn), s3vl._change_key_sql(s3vl.syncs, text)
    TO s3vl_admin;
