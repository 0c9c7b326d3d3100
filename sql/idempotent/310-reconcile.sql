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

-- Every source key of a sync, without rendering any text (a rolling run picks its share by hash).
CREATE OR REPLACE FUNCTION s3vl.reconcile_source_ids(sync_name text)
RETURNS TABLE (id text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._live_sync(sync_name);
BEGIN
    RETURN QUERY EXECUTE format('SELECT r.s3vl_key FROM s3vl.%I(false, NULL, NULL) AS r', s3vl._scan_function_name(s.name));
END
$$;
COMMENT ON FUNCTION s3vl.reconcile_source_ids(text) IS 'Every source key of a sync (no text rendered).';

-- The source rows of `keys` with non-blank text: key and current content hash (index lookups, so
-- a rolling run reads only the rows it judges).
CREATE OR REPLACE FUNCTION s3vl.reconcile_source_rows(sync_name text, keys text[])
RETURNS TABLE (id text, hash text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._live_sync(sync_name);
    -- the sync's rows function (its owner's privileges) parses the keys; collected whole, so that a
    -- batch that fails returns nothing twice
    q text := format('SELECT coalesce(array_agg(r.s3vl_key), ''{}''), coalesce(array_agg(r.s3vl_hash), ''{}'') '
                     'FROM s3vl.%I($1) AS r WHERE r.s3vl_content OPERATOR(pg_catalog.~) %L',
                     s3vl._rows_function_name(s.name), '[^[:space:]]');
    ids text[] := '{}';
    hashes text[] := '{}';
    one_id text[];
    one_hash text[];
    k text;
BEGIN
    BEGIN
        EXECUTE q INTO ids, hashes USING keys;
    EXCEPTION WHEN data_exception THEN
        -- a key no source row can have (a vector someone put by hand): one key at a time
        ids := '{}';
        hashes := '{}';
        FOREACH k IN ARRAY keys LOOP
            BEGIN
                EXECUTE q INTO one_id, one_hash USING ARRAY[k];
                ids := ids || one_id;
                hashes := hashes || one_hash;
            EXCEPTION WHEN data_exception THEN
                NULL;
            END;
        END LOOP;
    END;
    RETURN QUERY SELECT u.i, u.h FROM unnest(ids, hashes) AS u(i, h);
END
$$;
COMMENT ON FUNCTION s3vl.reconcile_source_rows(text, text[]) IS 'Some source keys of a sync with their current content hash (rows with blank text have no vectors).';

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

-- Metadata drift: the vectors of `ids` carry other metadata than the worker last wrote. Forgetting
-- the recorded metadata hash makes the worker's diff re-put their metadata (no embedding call)
-- when the keys are enqueued.
CREATE OR REPLACE FUNCTION s3vl.reconcile_forget_metadata(sync_name text, since timestamptz, ids text[])
RETURNS int
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH u AS (
        UPDATE s3vl.sync_state AS st SET metadata_hash = NULL
        WHERE st.sync_name = reconcile_forget_metadata.sync_name AND st.key = ANY (ids) AND st.synced_at < since
        RETURNING 1)
    SELECT count(*)::int FROM u
$$;
COMMENT ON FUNCTION s3vl.reconcile_forget_metadata(text, timestamptz, text[]) IS 'Reconcile: make the worker re-put the metadata of keys whose vectors drifted.';

-- Rolling reconcile ------------------------------------------------------------------------------

-- The sync's cycle (started on first use).
CREATE OR REPLACE FUNCTION s3vl.reconcile_cycle(sync_name text)
RETURNS s3vl.reconcile_cycles
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c s3vl.reconcile_cycles;
BEGIN
    PERFORM s3vl._sync(sync_name);
    INSERT INTO s3vl.reconcile_cycles (sync_name) VALUES (reconcile_cycle.sync_name) ON CONFLICT DO NOTHING;
    SELECT * INTO c FROM s3vl.reconcile_cycles r WHERE r.sync_name = reconcile_cycle.sync_name;
    RETURN c;
END
$$;
COMMENT ON FUNCTION s3vl.reconcile_cycle(text) IS 'Rolling reconcile: where the sync''s cycle stands.';

-- Forget what segments `segs` held (before they are stored afresh from a new listing).
CREATE OR REPLACE FUNCTION s3vl.reconcile_snapshot_clear(sync_name text, segs int[])
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        DELETE FROM s3vl.reconcile_snapshot AS s
        WHERE s.sync_name = reconcile_snapshot_clear.sync_name AND s.seg = ANY (segs)
        RETURNING 1)
    SELECT count(*) FROM d
$$;
COMMENT ON FUNCTION s3vl.reconcile_snapshot_clear(text, int[]) IS 'Rolling reconcile: forget the listing of some segments.';

-- Store listed vectors (parallel arrays, one element per vector; gone: a tombstone) in the snapshot.
CREATE OR REPLACE FUNCTION s3vl.reconcile_snapshot_put(
    sync_name text, keys text[], segs int[], ids text[], sids text[], evs text[], hashes text[], chunks int[],
    mhashes text[], gone boolean[])
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH i AS (
        INSERT INTO s3vl.reconcile_snapshot AS s (sync_name, key, seg, id, sid, ev, hash, chunk, mhash, gone)
        SELECT x.name, u.key, u.seg, u.id, u.sid, u.ev, u.hash, u.chunk, u.mhash, u.gone
        FROM (SELECT sy.name FROM s3vl.syncs sy WHERE sy.name = reconcile_snapshot_put.sync_name) AS x
        CROSS JOIN unnest(keys, segs, ids, sids, evs, hashes, chunks, mhashes, gone)
            AS u(key, seg, id, sid, ev, hash, chunk, mhash, gone)
        ON CONFLICT ON CONSTRAINT reconcile_snapshot_pkey DO UPDATE
        SET seg = EXCLUDED.seg, id = EXCLUDED.id, sid = EXCLUDED.sid, ev = EXCLUDED.ev, hash = EXCLUDED.hash,
            chunk = EXCLUDED.chunk, mhash = EXCLUDED.mhash, gone = EXCLUDED.gone
        RETURNING 1)
    SELECT count(*) FROM i
$$;
COMMENT ON FUNCTION s3vl.reconcile_snapshot_put(text, text[], int[], text[], text[], text[], text[], int[], text[], boolean[]) IS 'Rolling reconcile: store listed vectors and tombstones.';

-- Drop tombstones of keys s3vl no longer knows (no source row, no state row).
CREATE OR REPLACE FUNCTION s3vl.reconcile_snapshot_forget(sync_name text, keys text[])
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        DELETE FROM s3vl.reconcile_snapshot AS s
        WHERE s.sync_name = reconcile_snapshot_forget.sync_name AND s.key = ANY (keys) AND s.gone
        RETURNING 1)
    SELECT count(*) FROM d
$$;
COMMENT ON FUNCTION s3vl.reconcile_snapshot_forget(text, text[]) IS 'Rolling reconcile: drop tombstones of keys no source or state row has.';

-- A run listed `segs` at `listed_at` and found `findings` (counts per category): record it, and
-- start the next cycle when this one has listed its last segment. Returns the cycle row after.
CREATE OR REPLACE FUNCTION s3vl.reconcile_cycle_advance(
    sync_name text, cycle int, segs int[], listed_at timestamptz, findings jsonb, finished_at timestamptz)
RETURNS s3vl.reconcile_cycles
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c s3vl.reconcile_cycles;
    seg int;
    total jsonb := '{}';
    k text;
BEGIN
    SELECT * INTO c FROM s3vl.reconcile_cycles r WHERE r.sync_name = reconcile_cycle_advance.sync_name FOR UPDATE;
    IF NOT FOUND OR c.cycle <> reconcile_cycle_advance.cycle THEN
        RAISE EXCEPTION 'the rolling reconcile of sync % moved on while this run listed (cycle % expected)',
            sync_name, reconcile_cycle_advance.cycle USING ERRCODE = 'serialization_failure';
    END IF;
    FOREACH seg IN ARRAY segs LOOP
        c.listed_at[seg + 1] := reconcile_cycle_advance.listed_at;
    END LOOP;
    FOR k IN SELECT jsonb_object_keys(c.found || reconcile_cycle_advance.findings) LOOP
        total := total || jsonb_build_object(k, coalesce((c.found ->> k)::bigint, 0)
                                                + coalesce((reconcile_cycle_advance.findings ->> k)::bigint, 0));
    END LOOP;
    c.found := total;
    c.next_segment := (SELECT max(x) + 1 FROM unnest(segs) AS x);
    IF c.next_segment >= array_length(c.listed_at, 1) THEN
        c.last_cycle := jsonb_build_object('cycle', c.cycle, 'started_at', c.started_at, 'finished_at', finished_at,
                                           'found', c.found);
        c.cycle := c.cycle + 1;
        c.next_segment := 0;
        c.started_at := finished_at;
        c.found := '{}';
    END IF;
    UPDATE s3vl.reconcile_cycles r
    SET cycle = c.cycle, next_segment = c.next_segment, started_at = c.started_at, listed_at = c.listed_at,
        found = c.found, last_cycle = c.last_cycle
    WHERE r.sync_name = reconcile_cycle_advance.sync_name;
    RETURN c;
END
$$;
COMMENT ON FUNCTION s3vl.reconcile_cycle_advance(text, int, int[], timestamptz, jsonb, timestamptz) IS 'Rolling reconcile: record a run''s segments and findings; completes the cycle after its last segment.';
