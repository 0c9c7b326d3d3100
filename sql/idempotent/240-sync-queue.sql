-- The queue: enqueueing changed keys, and the protocol the worker calls by name (lease, load,
-- begin_write, complete, fail, release, extend_lease, pause). Every function is SECURITY
-- DEFINER (no role holds DML on s3vl's tables) and evaluates nothing a sync's declarer
-- controls: rows are read only through the sync's own generated functions, which run as that
-- declarer (sql/idempotent/210-sync-generated.sql); keys are cast to built-in types only.
--
-- Versions: a function the worker calls keeps its name and signature while its contract holds;
-- a new contract is a new function beside the old one (load_rows -> load_v2), so that workers of
-- the previous release keep working during a rolling deploy (docs/internals.md lists them).

-- === enqueue ================================================================================
CREATE OR REPLACE FUNCTION s3vl.enqueue(sync_name text, keys text[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._live_sync(sync_name);
    bad text;
BEGIN
    -- a key that cannot be parsed into the key columns' types would fail every batch it is in
    BEGIN
        EXECUTE format('SELECT count(ROW(%s)) FROM unnest($1) AS k(s3vl_k)',
                       s3vl._key_parse_sql(s.source, s.key_columns, 'k.s3vl_k'))
        USING keys;
    EXCEPTION WHEN data_exception THEN
        GET STACKED DIAGNOSTICS bad = MESSAGE_TEXT;
        RAISE EXCEPTION 'enqueue: a key does not match the key columns of sync "%": %', sync_name, bad
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Keys are the s3vl_id form: the value as text; composite keys are parts joined by ''/''.';
    END;
    RETURN s3vl._enqueue_select(sync_name, format('SELECT unnest(%L::text[])', keys));
END
$$;
COMMENT ON FUNCTION s3vl.enqueue(text, text[]) IS 'Queue keys of a sync for re-sync (coalesces; bumps the version of queued keys).';

-- Every key of the sync: each source row (read by the sync's own scan function, as its
-- declarer), each key the index holds (so deleted rows go), and each key already queued (its
-- version moves on: a batch in flight, loaded before a TRUNCATE or under an older definition, is
-- requeued instead of completed, and its vectors not kept).
CREATE OR REPLACE FUNCTION s3vl.resync(sync_name text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._live_sync(sync_name);
BEGIN
    RETURN s3vl._enqueue_select(sync_name, format(
        'SELECT r.s3vl_key FROM s3vl.%1$I(false, NULL, NULL) AS r '
        'UNION SELECT st.key FROM s3vl.sync_state st WHERE st.sync_name = %2$L '
        'UNION SELECT o.key FROM s3vl.outbox o WHERE o.sync_name = %2$L',
        s3vl._scan_function_name(s.name), s.name));
END
$$;
COMMENT ON FUNCTION s3vl.resync(text) IS 'Queue every key of a sync (backfill / full resync); returns the number queued.';

-- === lease ==================================================================================
-- Lease up to `batch` pending keys of one sync (the given one, else the sync with the oldest
-- waiting change) for `lease_seconds`. SKIP LOCKED: concurrent workers never wait on or take
-- each other's keys; an expired lease (dead worker) makes its keys leasable again. A paused sync
-- (s3vl.pause_sync) is not leased until its pause ends.
CREATE OR REPLACE FUNCTION s3vl.lease(worker text, batch int, lease_seconds double precision DEFAULT 300,
                                      only_sync text DEFAULT NULL)
RETURNS TABLE (sync_name text, key text, version bigint, attempts int)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target text;
BEGIN
    IF batch IS NULL OR batch < 1 OR lease_seconds IS NULL OR lease_seconds <= 0 THEN
        RAISE EXCEPTION 'lease: batch must be at least 1 and lease_seconds above 0 (got % and %)', batch, lease_seconds
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the oldest leasable change of each sync (outbox_pending_idx: one short index scan per
    -- sync, so the writers' enqueues maintain no second age index); outbox rows of a sync
    -- that no longer exists are never leased
    SELECT x.name INTO target FROM s3vl.syncs x
    CROSS JOIN LATERAL (
        SELECT o.enqueued_at FROM s3vl.outbox o
        WHERE o.sync_name = x.name AND o.status = 'pending' AND (o.lease_until IS NULL OR o.lease_until < now())
        ORDER BY o.enqueued_at
        LIMIT 1 FOR UPDATE SKIP LOCKED) AS oldest
    WHERE (only_sync IS NULL OR x.name = only_sync) AND (x.paused_until IS NULL OR x.paused_until <= now())
    ORDER BY oldest.enqueued_at
    LIMIT 1;
    IF target IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE s3vl.outbox o SET lease_until = now() + make_interval(secs => lease_seconds), leased_by = worker
    FROM (SELECT c.sync_name, c.key FROM s3vl.outbox c
          WHERE c.sync_name = target AND c.status = 'pending' AND (c.lease_until IS NULL OR c.lease_until < now())
          ORDER BY c.enqueued_at   -- outbox_pending_idx order: no sort of the whole queue
          LIMIT batch FOR UPDATE SKIP LOCKED) AS picked
    WHERE o.sync_name = picked.sync_name AND o.key = picked.key
    RETURNING o.sync_name, o.key, o.version, o.attempts;
END
$$;
COMMENT ON FUNCTION s3vl.lease(text, int, double precision, text) IS 'Lease a batch of pending keys of one sync (FOR UPDATE SKIP LOCKED, expiring lease).';

-- === load ===================================================================================
-- v1: the current rows of `keys` (text, metadata, content hash; a key whose row is gone is
-- absent). An error of any row fails the call (v1 workers retry key by key).
CREATE OR REPLACE FUNCTION s3vl.load_rows(sync_name text, keys text[])
RETURNS TABLE (key text, content text, metadata jsonb, content_hash text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._live_sync(sync_name);
BEGIN
    RETURN QUERY EXECUTE format('SELECT * FROM s3vl.%I($1)', s3vl._rows_function_name(s.name)) USING keys;
END
$$;
COMMENT ON FUNCTION s3vl.load_rows(text, text[]) IS 'v1: current text, metadata and content hash of the rows with these keys (missing = deleted).';

-- v2: everything the worker needs about a batch, one row per key: the current row (present =
-- false: deleted), the state of its vectors (has_state), and `error` when that row alone could
-- not be rendered (its text expression or metadata failed on its values): the batch is loaded
-- whole, and only when that fails key by key, so a bad row fails alone. An error of the sync
-- itself (its source gone, a privilege revoked, a column dropped: SQLSTATE classes 42 and 0A)
-- fails the call: no row is to blame, and the worker pauses the sync (s3vl.pause_sync).
CREATE OR REPLACE FUNCTION s3vl._row_error(sqlstate text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT left(sqlstate, 2) IN ('22', '23', '2F', '38', '39', 'P0', '44') $$;

CREATE OR REPLACE FUNCTION s3vl.load_v2(sync_name text, keys text[])
RETURNS TABLE (key text, present boolean, content text, metadata jsonb, content_hash text,
               has_state boolean, state_hash text, metadata_hash text, embedding_version text,
               chunk_count int, chunked boolean, error text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._live_sync(sync_name);
    fn text := s3vl._rows_function_name(s.name);
    loaded jsonb;
    errors jsonb := '{}';
    k text;
    msg text;
    state text;
BEGIN
    BEGIN
        EXECUTE format('SELECT coalesce(jsonb_object_agg(r.s3vl_key, ARRAY[r.s3vl_content, r.s3vl_metadata::text, r.s3vl_hash]), ''{}'') '
                       'FROM s3vl.%I($1) AS r', fn) INTO loaded USING keys;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
        IF NOT s3vl._row_error(state) THEN
            RAISE;
        END IF;
        loaded := '{}';
        FOREACH k IN ARRAY keys LOOP
            BEGIN
                EXECUTE format('SELECT coalesce(jsonb_object_agg(r.s3vl_key, ARRAY[r.s3vl_content, r.s3vl_metadata::text, r.s3vl_hash]), ''{}'') '
                               'FROM s3vl.%I(ARRAY[$1]) AS r', fn) INTO STRICT msg USING k;
                loaded := loaded || msg::jsonb;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
                IF NOT s3vl._row_error(state) THEN
                    RAISE;
                END IF;
                errors := errors || jsonb_build_object(k, format('rendering the row failed: %s (SQLSTATE %s)', msg, state));
            END;
        END LOOP;
    END;
    RETURN QUERY
    SELECT u.k, loaded ? u.k, loaded -> u.k ->> 0, (loaded -> u.k ->> 1)::jsonb, loaded -> u.k ->> 2,
           st.key IS NOT NULL, st.content_hash, st.metadata_hash, st.embedding_version, st.chunk_count, st.chunked,
           errors ->> u.k
    FROM unnest(keys) AS u(k)
    LEFT JOIN s3vl.sync_state AS st ON st.sync_name = s.name AND st.key = u.k;
END
$$;
COMMENT ON FUNCTION s3vl.load_v2(text, text[]) IS 'Current rows, state and per-row render errors of leased keys (the worker''s one read per batch).';

-- === write-ahead, complete, fail ============================================================
-- Write-ahead for a batch, called right before its PutVectors: the keys about to be written are
-- marked unknown (content_hash, metadata_hash NULL) and their chunk count widened to cover the
-- vector keys about to exist. A worker that dies after the put but before s3vl.complete then
-- leaves a state that the next pass cannot mistake for current: a row changed back to its
-- recorded text is re-embedded, and a row deleted meanwhile has its new vectors deleted.
-- `writes` is a jsonb array of {key, embedding_version, chunk_count, chunked}.
CREATE OR REPLACE FUNCTION s3vl.begin_write(sync_name text, writes jsonb)
RETURNS int
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        INSERT INTO s3vl.sync_state AS st (sync_name, key, content_hash, metadata_hash, embedding_version,
                                           chunk_count, chunked, synced_at)
        SELECT begin_write.sync_name, x.key, NULL, NULL, x.embedding_version, coalesce(x.chunk_count, 0),
               coalesce(x.chunked, false), now()
        FROM jsonb_to_recordset(writes) AS x(key text, embedding_version text, chunk_count int, chunked boolean)
        WHERE EXISTS (SELECT FROM s3vl.syncs s WHERE s.name = begin_write.sync_name)
        ORDER BY x.key
        ON CONFLICT ON CONSTRAINT sync_state_pkey DO UPDATE SET
            content_hash = NULL, metadata_hash = NULL, embedding_version = excluded.embedding_version,
            chunk_count = greatest(st.chunk_count, excluded.chunk_count), chunked = excluded.chunked,
            synced_at = excluded.synced_at
        RETURNING 1)
    SELECT count(*)::int FROM w
$$;
COMMENT ON FUNCTION s3vl.begin_write(text, jsonb) IS 'Before a PutVectors: mark the keys about to be written unknown, widening their chunk count.';

-- Record what a batch wrote and complete its keys, in one transaction. `results` is a jsonb
-- array of {key, version, deleted, content_hash, metadata_hash, embedding_version, chunk_count, chunked}.
-- A key whose outbox version moved on (changed meanwhile, or re-leased after this worker's
-- lease expired) is not completed: it is queued again and its state marked unknown
-- (content_hash NULL), because another worker may have written it concurrently; the next pass
-- re-embeds it and converges. Returns the keys completed and the keys requeued.
CREATE OR REPLACE FUNCTION s3vl.complete(sync_name text, worker text, results jsonb,
                                         OUT completed int, OUT requeued int)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CREATE TEMPORARY TABLE IF NOT EXISTS s3vl_results (
        key text PRIMARY KEY, version bigint, deleted boolean, content_hash text, metadata_hash text,
        embedding_version text, chunk_count int, chunked boolean, current boolean) ON COMMIT DROP;
    TRUNCATE s3vl_results;
    INSERT INTO s3vl_results
    SELECT r.key, r.version, coalesce(r.deleted, false), r.content_hash, r.metadata_hash,
           r.embedding_version, coalesce(r.chunk_count, 0), coalesce(r.chunked, false), false
    FROM jsonb_to_recordset(results) AS r(key text, version bigint, deleted boolean, content_hash text,
                                          metadata_hash text, embedding_version text, chunk_count int,
                                          chunked boolean)
    ON CONFLICT (key) DO NOTHING;

    -- lock this batch's outbox rows (in key order) and see which versions are still current
    UPDATE s3vl_results r SET current = true
    FROM (SELECT o.key, o.version FROM s3vl.outbox o JOIN s3vl_results r2 ON r2.key = o.key
          WHERE o.sync_name = complete.sync_name ORDER BY o.key COLLATE "C" FOR UPDATE OF o) AS o
    WHERE o.key = r.key AND o.version = r.version;

    -- state: current keys get what was written; the others are marked unknown, keeping the
    -- larger chunk count so that the next pass deletes every chunk either worker wrote
    DELETE FROM s3vl.sync_state st USING s3vl_results r
    WHERE st.sync_name = complete.sync_name AND st.key = r.key AND r.current AND r.deleted;
    INSERT INTO s3vl.sync_state AS st (sync_name, key, content_hash, metadata_hash, embedding_version,
                                       chunk_count, chunked, synced_at)
    SELECT complete.sync_name, r.key,
           CASE WHEN r.current THEN r.content_hash END, CASE WHEN r.current THEN r.metadata_hash END,
           r.embedding_version, r.chunk_count, r.chunked, now()
    FROM s3vl_results r WHERE NOT (r.current AND r.deleted)
      AND EXISTS (SELECT FROM s3vl.syncs s WHERE s.name = complete.sync_name)
    ORDER BY r.key
    ON CONFLICT ON CONSTRAINT sync_state_pkey DO UPDATE SET
        content_hash = excluded.content_hash, metadata_hash = excluded.metadata_hash,
        embedding_version = excluded.embedding_version,
        chunk_count = CASE WHEN excluded.content_hash IS NULL THEN greatest(st.chunk_count, excluded.chunk_count)
                           ELSE excluded.chunk_count END,
        chunked = excluded.chunked,
        synced_at = excluded.synced_at;

    DELETE FROM s3vl.outbox o USING s3vl_results r
    WHERE o.sync_name = complete.sync_name AND o.key = r.key AND r.current;
    GET DIAGNOSTICS completed = ROW_COUNT;
    requeued := s3vl._enqueue_select(complete.sync_name, 'SELECT key FROM s3vl_results WHERE NOT current');
    -- this worker is done with them: make them leasable at once
    UPDATE s3vl.outbox o SET lease_until = NULL, leased_by = NULL
    FROM s3vl_results r
    WHERE o.sync_name = complete.sync_name AND o.key = r.key AND NOT r.current AND o.leased_by = complete.worker;
    UPDATE s3vl.syncs x SET last_success_at = now(), last_error = NULL, last_error_at = NULL
    WHERE x.name = complete.sync_name;
END
$$;
COMMENT ON FUNCTION s3vl.complete(text, text, jsonb) IS 'Record state and complete leased keys whose version is unchanged; requeue the rest.';

-- A batch's keys failed: count an attempt (only where the version is unchanged: a changed row
-- deserves fresh attempts), keep the last error, and mark keys failed after max_attempts.
-- `failures` is a jsonb array of {key, version, error}. With retry_after > 0 a failed key is
-- not leased again for retry_after * 2^attempts seconds (at most 10 minutes): a backoff.
CREATE OR REPLACE FUNCTION s3vl.fail(sync_name text, worker text, failures jsonb,
                                     retry_after double precision DEFAULT 0)
RETURNS int
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n int;
    maxa int := (s3vl._sync(sync_name)).max_attempts;
BEGIN
    UPDATE s3vl.outbox o SET
        attempts = o.attempts + 1,
        last_error = left(f.error, 2000),
        status = CASE WHEN o.attempts + 1 >= maxa THEN 'failed' ELSE 'pending' END,
        lease_until = CASE WHEN retry_after > 0 AND o.attempts + 1 < maxa
                           THEN now() + make_interval(secs => least(retry_after * 2 ^ o.attempts, 600)) END,
        leased_by = NULL
    FROM (SELECT * FROM jsonb_to_recordset(failures) AS x(key text, version bigint, error text) ORDER BY x.key COLLATE "C") AS f
    WHERE o.sync_name = fail.sync_name AND o.key = f.key AND o.version = f.version;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- a key changed meanwhile: just make it leasable again
    UPDATE s3vl.outbox o SET lease_until = NULL, leased_by = NULL
    FROM jsonb_to_recordset(failures) AS f(key text, version bigint, error text)
    WHERE o.sync_name = fail.sync_name AND o.key = f.key AND o.version <> f.version AND o.leased_by = worker;
    RETURN n;
END
$$;
COMMENT ON FUNCTION s3vl.fail(text, text, jsonb, double precision) IS 'Count a failed attempt for leased keys; failed after max_attempts with the last error.';

-- Give leased keys back at once (a worker stopping); nothing is counted against them.
CREATE OR REPLACE FUNCTION s3vl.release(sync_name text, worker text, keys text[])
RETURNS int
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        UPDATE s3vl.outbox o SET lease_until = NULL, leased_by = NULL
        WHERE o.sync_name = release.sync_name AND o.key = ANY (keys) AND o.leased_by = worker
        RETURNING 1)
    SELECT count(*)::int FROM r
$$;

-- A worker still busy with its batch keeps its lease (called between pipeline stages when a
-- batch runs long). Returns the keys still held.
CREATE OR REPLACE FUNCTION s3vl.extend_lease(sync_name text, worker text, keys text[], lease_seconds double precision)
RETURNS int
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        UPDATE s3vl.outbox o SET lease_until = now() + make_interval(secs => lease_seconds)
        WHERE o.sync_name = extend_lease.sync_name AND o.key = ANY (keys) AND o.leased_by = worker
        RETURNING 1)
    SELECT count(*)::int FROM r
$$;

-- The sync failed as a whole (its source is gone, a privilege was revoked, its definition no
-- longer parses): no row is to blame, so none is charged an attempt. It is not leased again for
-- `seconds`, and sync_status shows the error; its next successful batch clears it.
CREATE OR REPLACE FUNCTION s3vl.pause_sync(sync_name text, error text, seconds double precision)
RETURNS timestamptz
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE s3vl.syncs x SET paused_until = now() + make_interval(secs => greatest(seconds, 0)),
                            last_error = left(error, 2000), last_error_at = now()
    WHERE x.name = pause_sync.sync_name
    RETURNING x.paused_until
$$;
COMMENT ON FUNCTION s3vl.pause_sync(text, text, double precision) IS 'The sync failed as a whole: do not lease it for a while, and show why.';

-- Failed keys go back to pending with fresh attempts, and paused syncs resume. NULL = every sync.
CREATE OR REPLACE FUNCTION s3vl.retry_failed(sync_name text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF retry_failed.sync_name IS NOT NULL THEN
        PERFORM s3vl._sync(retry_failed.sync_name);
    END IF;
    UPDATE s3vl.syncs x SET paused_until = NULL
    WHERE retry_failed.sync_name IS NULL OR x.name = retry_failed.sync_name;
    WITH r AS (
        UPDATE s3vl.outbox o SET status = 'pending', attempts = 0, lease_until = NULL, leased_by = NULL,
                                 enqueued_at = now()
        WHERE o.status = 'failed' AND (retry_failed.sync_name IS NULL OR o.sync_name = retry_failed.sync_name)
        RETURNING 1)
    SELECT count(*) INTO n FROM r;
    RETURN n;
END
$$;
COMMENT ON FUNCTION s3vl.retry_failed(text) IS 'Put failed keys back in the queue and resume paused syncs (all syncs when NULL).';
