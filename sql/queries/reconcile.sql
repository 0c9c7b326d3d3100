-- Reconcile's queries (sync/ops/reconcile/): the scan of the index into a temporary table, the
-- classification that joins it with the source and s3vl.sync_state, and the repairs.
--
-- Everything happens in session-private temporary tables of the reconcile connection, so 1M rows
-- on each side never reach Python; only exact counts and a few sample keys come back. The source
-- is read only through s3vl.reconcile_source (the sync's own scan function, as its declarer), and
-- state is corrected only through s3vl.reconcile_fix_state / reconcile_forget: this session reads
-- s3vl's tables and writes its own.
--
-- Tables (per run, per sync):
-- * s3vl_reconcile_scan (key, sid, ev, hash, chunk, seg): every listed vector, streamed by COPY.
-- * s3vl_rc_src  (id, hash): every source row with non-blank text: its key and current content hash.
-- * s3vl_rc_vec  (key, id, chunk, ev, hash, orphan, source_gone): every listed vector. A vector is
--   an orphan when its key is not one s3vl writes (<id> or <id>#<n>), its source row is gone, or
--   it is a chunk beyond the chunk count the state row records.
-- * s3vl_rc_keys one row per key of the source or the state table: missing / stale flags and the
--   drift action (insert/update/delete) that makes the state row describe the index after orphans
--   are removed. State rows of deleted source rows whose vectors are orphans are not drift: the
--   orphan repair removes them together with the vectors.
-- Races with a running worker: keys whose state row was written after the scan started are left
-- out of missing/stale/drift (the worker has newer knowledge than the scan); every repair is
-- idempotent (enqueue coalesces, deletes of absent keys succeed), so a race costs at most work.

-- reconcile_session --
-- temp_buffers only counts before the session first touches a temporary table.
SELECT pg_catalog.set_config('temp_buffers', '256MB', false), pg_catalog.set_config('work_mem', '128MB', false);

-- reconcile_targets --
-- The syncs to reconcile (all, or the named ones), with what makes one impossible to reconcile.
SELECT s.name, s.source_name AS source, c.oid IS NOT NULL AS source_exists, s.index_name, i.index_arn, i.region,
       s.embedding_version, s.chunk_size IS NOT NULL AS chunked
FROM s3vl.syncs AS s JOIN s3vl.indexes AS i ON i.name = s.index_name
LEFT JOIN pg_catalog.pg_class AS c ON c.oid = s.source
WHERE %(names)s::text[] IS NULL OR s.name = ANY (%(names)s::text[])
ORDER BY s.name;

-- reconcile_lock --
-- One reconcile per sync at a time (a session lock: released at the end, or when the session ends).
SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended('s3vl.reconcile:' || %(sync)s, 0)) AS locked;

-- reconcile_unlock --
SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended('s3vl.reconcile:' || %(sync)s, 0));

-- reconcile_now --
SELECT pg_catalog.clock_timestamp() AS now;

-- reconcile_started --
SELECT s3vl.reconcile_started(%(sync)s, %(started_at)s, %(applied)s) AS id;

-- reconcile_finished --
SELECT s3vl.reconcile_finished(%(id)s, %(finished_at)s, %(report)s::jsonb);

-- reconcile_expected_vectors --
SELECT sum(chunk_count)::bigint AS n FROM s3vl.sync_state WHERE sync_name = %(sync)s;

-- scan_drop --
DROP TABLE IF EXISTS pg_temp.s3vl_reconcile_scan;

-- scan_create --
-- Temporary: private to this session, never WAL-logged, gone when the connection closes.
CREATE TEMPORARY TABLE s3vl_reconcile_scan (key text NOT NULL, sid text, ev text, hash text, chunk int,
                                            seg smallint NOT NULL);

-- scan_copy --
COPY s3vl_reconcile_scan (key, sid, ev, hash, chunk, seg) FROM STDIN;

-- scan_analyze --
ANALYZE s3vl_reconcile_scan;

-- classify_drop --
DROP TABLE IF EXISTS pg_temp.s3vl_rc_src, pg_temp.s3vl_rc_vec, pg_temp.s3vl_rc_idx, pg_temp.s3vl_rc_keys,
    pg_temp.s3vl_rc_work, pg_temp.s3vl_rc_enqueue, pg_temp.s3vl_rc_fix;

-- classify_source --
CREATE TEMPORARY TABLE s3vl_rc_src AS SELECT id, hash FROM s3vl.reconcile_source(%(sync)s);

-- classify_source_analyze --
ANALYZE s3vl_rc_src;

-- classify_vectors --
-- Every listed vector, attributed to a source key: its s3vl_id metadata wins; a vector without it
-- is attributed by its key (so vectors someone put by hand are still found and classified). Key
-- layouts: a vector is plain (key = id) or chunked (key = id#n); it is well formed in the sync's
-- layout, or in the layout its state row records (so that while the worker moves a sync to or
-- from chunking, the old vectors are stale, not orphans).
CREATE TEMPORARY TABLE s3vl_rc_vec AS
SELECT v.key, v.id, CASE WHEN v.is_chunked THEN v.chunk ELSE 0 END AS chunk, v.ev, v.hash,
       v.is_chunked,
       (NOT coalesce((v.is_plain AND (NOT %(chunked)s OR st.chunked IS FALSE))
                     OR (v.is_chunked AND (%(chunked)s OR st.chunked)), false)
        OR src.id IS NULL
        OR (st.chunked AND v.is_chunked AND v.chunk >= st.chunk_count)) AS orphan,
       (src.id IS NULL) AS source_gone
FROM (SELECT s.key, w.id, w.chunk, s.ev, s.hash,
             (s.key = w.id) AS is_plain,
             coalesce(s.key = w.id || '#' || w.chunk, false) AS is_chunked
      FROM s3vl_reconcile_scan AS s
      CROSS JOIN LATERAL (
          SELECT CASE WHEN %(chunked)s THEN coalesce(s.sid, regexp_replace(s.key, '#[0-9]+$', '')) ELSE coalesce(s.sid, s.key) END AS id,
                 CASE WHEN %(chunked)s THEN coalesce(s.chunk, (regexp_match(s.key, '#([0-9]{1,9})$'))[1]::int) ELSE s.chunk END AS chunk
      ) AS w) AS v
LEFT JOIN s3vl_rc_src AS src ON src.id = v.id
LEFT JOIN s3vl.sync_state AS st ON st.sync_name = %(sync)s AND st.key = v.id;

-- classify_vectors_analyze --
ANALYZE s3vl_rc_vec;

-- classify_index --
-- Per key, what the index holds once orphans are gone.
CREATE TEMPORARY TABLE s3vl_rc_idx AS
SELECT id, count(*) AS n, max(chunk) AS max_chunk,
       bool_and(is_chunked) AS all_chunked, NOT bool_or(is_chunked) AS all_plain,
       min(hash) AS hash, (count(hash) = count(*) AND min(hash) = max(hash)) AS hash_ok,
       min(ev) AS ev, (count(ev) = count(*) AND min(ev) = max(ev)) AS ev_ok
FROM s3vl_rc_vec WHERE NOT orphan GROUP BY id;

-- classify_index_analyze --
ANALYZE s3vl_rc_idx;

-- classify_keys --
CREATE TEMPORARY TABLE s3vl_rc_keys AS
WITH joined AS (
    SELECT coalesce(src.id, st.key) AS id,
           src.id IS NOT NULL AS in_source, src.hash AS src_hash,
           i.n, i.max_chunk, i.all_chunked, i.all_plain,
           i.hash AS idx_hash, i.hash_ok, i.ev AS idx_ev, i.ev_ok,
           st.key IS NOT NULL AS has_state, st.content_hash, st.embedding_version,
           st.chunk_count, st.chunked, st.synced_at,
           og.id IS NOT NULL AS orphan_cleanup
    FROM s3vl_rc_src AS src
    LEFT JOIN s3vl_rc_idx AS i ON i.id = src.id
    FULL JOIN (SELECT * FROM s3vl.sync_state WHERE sync_name = %(sync)s) AS st ON st.key = src.id
    LEFT JOIN (SELECT DISTINCT id FROM s3vl_rc_vec WHERE source_gone) AS og ON og.id = st.key
), judged AS (
    SELECT j.*,
           coalesce((j.all_plain AND j.n = 1)
                    OR (j.all_chunked AND j.n = j.max_chunk + 1
                        AND NOT (j.has_state AND j.chunked AND j.chunk_count > j.n)), false) AS complete,
           coalesce(j.has_state AND j.synced_at >= %(since)s, false) AS recent
    FROM joined AS j
), desired AS (
    SELECT d.*,
           (d.in_source AND d.n IS NOT NULL) AS want_state,
           CASE WHEN d.complete AND d.hash_ok THEN d.idx_hash END AS want_hash,
           CASE WHEN d.ev_ok THEN d.idx_ev END AS want_ev,
           CASE WHEN d.all_chunked THEN d.max_chunk + 1 WHEN d.all_plain THEN 1
                ELSE d.chunk_count END AS want_chunks,
           CASE WHEN d.all_chunked THEN true WHEN d.all_plain THEN false ELSE d.chunked END AS want_chunked
    FROM judged AS d
)
SELECT id, in_source, recent,
       (in_source AND NOT recent AND NOT complete) AS missing,
       (in_source AND NOT recent AND complete
        AND (NOT hash_ok OR idx_hash IS DISTINCT FROM src_hash
             OR NOT ev_ok OR idx_ev IS DISTINCT FROM %(ev)s
             OR all_chunked IS DISTINCT FROM %(chunked)s)) AS stale,
       CASE
           WHEN recent THEN NULL
           WHEN has_state AND NOT want_state AND NOT orphan_cleanup THEN 'delete'
           WHEN NOT has_state AND want_state THEN 'insert'
           WHEN has_state AND want_state
                AND (content_hash, embedding_version, chunk_count, chunked)
                    IS DISTINCT FROM (want_hash, want_ev, want_chunks, want_chunked) THEN 'update'
       END AS drift,
       want_hash, want_ev, want_chunks, want_chunked
FROM desired;

-- classify_keys_analyze --
ANALYZE s3vl_rc_keys;

-- classify_counts --
SELECT (SELECT count(*) FROM s3vl_rc_vec WHERE orphan) AS orphaned,
       (SELECT count(*) FROM s3vl_rc_keys WHERE missing) AS missing,
       (SELECT count(*) FROM s3vl_rc_keys WHERE stale) AS stale,
       (SELECT count(*) FROM s3vl_rc_keys WHERE drift IS NOT NULL) AS state_drift,
       (SELECT count(*) FROM s3vl_rc_src) AS source_rows,
       (SELECT count(*) FROM s3vl.sync_state WHERE sync_name = %(sync)s) AS state_rows;

-- sample_orphaned --
SELECT key FROM s3vl_rc_vec WHERE orphan ORDER BY key LIMIT %(limit)s;

-- sample_missing --
SELECT id AS key FROM s3vl_rc_keys WHERE missing ORDER BY id LIMIT %(limit)s;

-- sample_stale --
SELECT id AS key FROM s3vl_rc_keys WHERE stale ORDER BY id LIMIT %(limit)s;

-- sample_state_drift --
SELECT id AS key FROM s3vl_rc_keys WHERE drift IS NOT NULL ORDER BY id LIMIT %(limit)s;

-- classify_queued --
-- Missing and stale keys already waiting in the outbox (a worker has them).
SELECT count(*) FILTER (WHERE k.missing) AS missing, count(*) FILTER (WHERE k.stale) AS stale
FROM s3vl_rc_keys AS k JOIN s3vl.outbox AS o ON o.sync_name = %(sync)s AND o.key = k.id AND o.status = 'pending'
WHERE k.missing OR k.stale;

-- fix_work --
-- The state corrections, numbered for batches.
CREATE TEMPORARY TABLE s3vl_rc_fix AS
SELECT row_number() OVER (ORDER BY id) AS rn, id, drift, want_hash AS hash, want_ev AS ev,
       want_chunks AS chunks, want_chunked AS chunked
FROM s3vl_rc_keys WHERE drift IS NOT NULL;

-- fix_batch --
SELECT s3vl.reconcile_fix_state(%(sync)s, %(since)s, coalesce(
    (SELECT jsonb_agg(jsonb_build_object('id', id, 'drift', drift, 'hash', hash, 'ev', ev, 'chunks', chunks,
                                         'chunked', chunked))
     FROM s3vl_rc_fix WHERE rn > %(start)s AND rn <= %(end)s), '[]')) AS fixed;

-- orphan_work --
-- Orphans numbered for batched deletion; vectors of keys the worker wrote since the scan began
-- are left alone (the next run sees them again if they are still orphans).
CREATE TEMPORARY TABLE s3vl_rc_work AS
SELECT row_number() OVER (ORDER BY v.key) AS rn, v.key, v.id, v.source_gone
FROM s3vl_rc_vec AS v
WHERE v.orphan AND NOT EXISTS (
    SELECT 1 FROM s3vl.sync_state AS st
    WHERE st.sync_name = %(sync)s AND st.key = v.id AND st.synced_at >= %(since)s);

-- orphan_count --
SELECT count(*) AS n FROM s3vl_rc_work;

-- orphan_batch --
SELECT key FROM s3vl_rc_work WHERE rn > %(start)s AND rn <= %(end)s ORDER BY rn;

-- orphan_forget --
-- After the orphan vectors are gone, the state rows of their deleted source rows go too.
SELECT s3vl.reconcile_forget(%(sync)s, %(since)s,
    ARRAY(SELECT DISTINCT id FROM s3vl_rc_work WHERE source_gone AND rn <= %(done)s)) AS forgotten;

-- enqueue_work --
-- Keys to queue. Keys already in the outbox are left alone: a pending key will be processed
-- anyway (enqueueing it again would bump its version and make a worker's in-flight batch redo
-- it), and a failed key waits for an operator (s3vl retry-failed), so it stays unrepaired.
CREATE TEMPORARY TABLE s3vl_rc_enqueue AS
SELECT row_number() OVER () AS rn, id, stale FROM (
    (SELECT k.id, false AS stale FROM s3vl_rc_keys AS k
     WHERE k.missing AND NOT EXISTS (SELECT 1 FROM s3vl.outbox AS o WHERE o.sync_name = %(sync)s AND o.key = k.id)
     ORDER BY k.id)
    UNION ALL
    (SELECT k.id, true FROM s3vl_rc_keys AS k
     WHERE k.stale AND NOT EXISTS (SELECT 1 FROM s3vl.outbox AS o WHERE o.sync_name = %(sync)s AND o.key = k.id)
     ORDER BY k.id LIMIT %(max_stale)s)
) AS w;

-- enqueue_count --
SELECT count(*) AS total, count(*) FILTER (WHERE stale) AS stale FROM s3vl_rc_enqueue;

-- enqueue_batch --
SELECT s3vl.enqueue(%(sync)s, ARRAY(SELECT id FROM s3vl_rc_enqueue WHERE rn > %(start)s AND rn <= %(end)s ORDER BY rn))
    AS enqueued;
