-- What reconcile (sync/ops/reconcile/) writes and reads through s3vl: its runs, every source key
-- with its content hash, and its corrections of s3vl.sync_state. SECURITY DEFINER (no role holds
-- DML on s3vl's tables); the source is read only by the sync's own scan function, as its declarer.
-- Reconcile classifies in temporary tables of its own session and passes what it decided here.

CREATE OR REPLACE FUNCTION s3vl.reconcile_started(sync_name text, started_at timestamptz, applied boolean)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO s3vl.reconcile_runs (sync_name, started_at, applied)
    SELECT s.name, reconcile_started.started_at, reconcile_started.applied
    FROM s3vl.syncs s WHERE s.name = reconcile_started.sync_name
    RETURNING id
$$;
COMMENT ON FUNCTION s3vl.reconcile_started(text, timestamptz, boolean) IS 'Record the start of a reconcile run; returns its id.';

CREATE OR REPLACE FUNCTION s3vl.reconcile_finished(run_id bigint, finished_at timestamptz, report jsonb)
RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE s3vl.reconcile_runs r SET finished_at = reconcile_finished.finished_at, report = reconcile_finished.report
    WHERE r.id = run_id
$$;
COMMENT ON FUNCTION s3vl.reconcile_finished(bigint, timestamptz, jsonb) IS 'Record the end and the report of a reconcile run.';

-- Every source row with non-blank text: its key and current content hash.
CREATE OR REPLACE FUNCTION s3vl.reconcile_source(sync_name text)
RETURNS TABLE (id text, hash text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._live_sync(sync_name);
BEGIN
    RETURN QUERY EXECUTE format('SELECT r.s3vl_key, r.s3vl_hash FROM s3vl.%I(true, NULL, NULL) AS r',
                                s3vl._scan_function_name(s.name));
END
$$;
COMMENT ON FUNCTION s3vl.reconcile_source(text) IS 'Every source key of a sync with its current content hash (rows with blank text have no vectors).';

-- Make state rows describe what the index holds. `fixes` is a jsonb array of {id, drift, hash,
-- ev, chunks, chunked}, drift one of insert / update / delete. Rows the worker wrote since
-- `since` (the scan's start) are left alone: it knows more than the scan.
CREATE OR REPLACE FUNCTION s3vl.reconcile_fix_state(sync_name text, since timestamptz, fixes jsonb)
RETURNS int
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n int;
    m int;
BEGIN
    PERFORM s3vl._sync(sync_name);
    DELETE FROM s3vl.sync_state AS st
    USING jsonb_to_recordset(fixes) AS f(id text, drift text)
    WHERE st.sync_name = reconcile_fix_state.sync_name AND st.key = f.id AND f.drift = 'delete' AND st.synced_at < since;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO s3vl.sync_state AS st (sync_name, key, content_hash, embedding_version, chunk_count, chunked)
    SELECT reconcile_fix_state.sync_name, f.id, f.hash, f.ev, f.chunks, f.chunked
    FROM jsonb_to_recordset(fixes) AS f(id text, drift text, hash text, ev text, chunks int, chunked boolean)
    WHERE f.drift IN ('insert', 'update')
    ORDER BY f.id
    ON CONFLICT ON CONSTRAINT sync_state_pkey DO UPDATE
    SET content_hash = EXCLUDED.content_hash, embedding_version = EXCLUDED.embedding_version,
        chunk_count = EXCLUDED.chunk_count, chunked = EXCLUDED.chunked
    WHERE st.synced_at < since;
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION s3vl.reconcile_fix_state(text, timestamptz, jsonb) IS 'Reconcile: correct state rows to describe the index (not those the worker wrote since `since`).';

-- After reconcile deleted the vectors of deleted source rows, their state rows go too.
CREATE OR REPLACE FUNCTION s3vl.reconcile_forget(sync_name text, since timestamptz, ids text[])
RETURNS int
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        DELETE FROM s3vl.sync_state AS st
        WHERE st.sync_name = reconcile_forget.sync_name AND st.key = ANY (ids) AND st.synced_at < since
        RETURNING 1)
    SELECT count(*)::int FROM d
$$;
COMMENT ON FUNCTION s3vl.reconcile_forget(text, timestamptz, text[]) IS 'Reconcile: drop the state rows of deleted source rows whose vectors it deleted.';
