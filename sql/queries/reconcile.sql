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
-- * s3vl_reconcile_scan (key, sid, ev, hash, chunk, seg, mhash): every listed vector, streamed by
--   COPY (a rolling run: the snapshot's vectors of the keys it judges, see rolling_* below).
-- * s3vl_rc_scope (id, since): the keys a rolling run judges, each with the time from which the
--   listing it is judged by is known (empty in a full run: it judges every key, since the scan began).
-- * s3vl_rc_state: the sync's state rows of the judged keys, with that `since`.
-- * s3vl_rc_src  (id, hash): every source row with non-blank text: its key and current content hash.
-- * s3vl_rc_vec  (key, id, chunk, ev, hash, orphan, source_gone): every listed vector. A vector is
--   an orphan when its key is not one s3vl writes (<id> or <id>#<n>), its source row is gone, or
--   it is a chunk beyond the chunk count the state row records.
-- * s3vl_rc_keys one row per key of the source or the state table: missing / stale flags and the
--   drift action (insert/update/delete) that makes the state row describe the index after orphans
--   are removed. State rows of deleted source rows whose vectors are orphans are not drift: the
--   orphan repair removes them together with the vectors.
-- Races with a running worker: keys whose state row was written after the scan started (the
-- listing of the key's segments, in a rolling run) are left out of missing/stale/drift (the worker has newer knowledge than the scan); every repair is
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
                                            seg smallint NOT NULL, mhash text);

-- scan_copy --
COPY s3vl_reconcile_scan (key, sid, ev, hash, chunk, seg, mhash) FROM STDIN;

-- scan_analyze --
ANALYZE s3vl_reconcile_scan;

-- scope_drop --
DROP TABLE IF EXISTS pg_temp.s3vl_rc_scope;

-- scope_create --
CREATE TEMPORARY TABLE s3vl_rc_scope (id text PRIMARY KEY, since timestamptz NOT NULL);

-- classify_drop --
DROP TABLE IF EXISTS pg_temp.s3vl_rc_src, pg_temp.s3vl_rc_state, pg_temp.s3vl_rc_vec, pg_temp.s3vl_rc_idx,
    pg_temp.s3vl_rc_keys, pg_temp.s3vl_rc_work, pg_temp.s3vl_rc_enqueue, pg_temp.s3vl_rc_fix;

-- classify_source --
-- (a full run; a rolling run reads only the rows it judges, rolling_source_*)
CREATE TEMPORARY TABLE s3vl_rc_src AS SELECT id, hash FROM s3vl.reconcile_source(%(sync)s);

-- classify_source_analyze --
ANALYZE s3vl_rc_src;

-- classify_state --
CREATE TEMPORARY TABLE s3vl_rc_state AS
SELECT st.key, st.content_hash, st.metadata_hash, st.embedding_version, st.chunk_count, st.chunked, st.synced_at,
       coalesce(sc.since, %(since)s) AS since
FROM s3vl.sync_state AS st LEFT JOIN s3vl_rc_scope AS sc ON sc.id = st.key
WHERE st.sync_name = %(sync)s AND (NOT %(scoped)s OR sc.id IS NOT NULL);

-- classify_state_index --
CREATE UNIQUE INDEX ON s3vl_rc_state (key);

-- classify_state_analyze --
ANALYZE s3vl_rc_state;

-- classify_vectors --
-- Every listed vector, attributed to a source key: its s3vl_id metadata wins; a vector without it
-- is attributed by its key (so vectors someone put by hand are still found and classified). Key
-- layouts: a vector is plain (key = id) or chunked (key = id#n); it is well formed in the sync's
-- layout, or in the layout its state row records (so that while the worker moves a sync to or
-- from chunking, the old vectors are stale, not orphans).
CREATE TEMPORARY TABLE s3vl_rc_vec AS
SELECT v.key, v.id, CASE WHEN v.is_chunked THEN v.chunk ELSE 0 END AS chunk, v.ev, v.hash, v.mhash,
       v.is_chunked,
       (NOT coalesce((v.is_plain AND (NOT %(chunked)s OR st.chunked IS FALSE))
                     OR (v.is_chunked AND (%(chunked)s OR st.chunked)), false)
        OR src.id IS NULL
        OR (st.chunked AND v.is_chunked AND v.chunk >= st.chunk_count)) AS orphan,
       (src.id IS NULL) AS source_gone
FROM (SELECT s.key, w.id, w.chunk, s.ev, s.hash, s.mhash,
             (s.key = w.id) AS is_plain,
             coalesce(s.key = w.id || '#' || w.chunk, false) AS is_chunked
      FROM s3vl_reconcile_scan AS s
      CROSS JOIN LATERAL (
          SELECT CASE WHEN %(chunked)s THEN coalesce(s.sid, regexp_replace(s.key, '#[0-9]+$', '')) ELSE coalesce(s.sid, s.key) END AS id,
                 CASE WHEN %(chunked)s THEN coalesce(s.chunk, (regexp_match(s.key, '#([0-9]{1,9})$'))[1]::int) ELSE s.chunk END AS chunk
      ) AS w) AS v
LEFT JOIN s3vl_rc_src AS src ON src.id = v.id
LEFT JOIN s3vl_rc_state AS st ON st.key = v.id;

-- classify_vectors_analyze --
ANALYZE s3vl_rc_vec;

-- classify_index --
-- Per key, what the index holds once orphans are gone.
CREATE TEMPORARY TABLE s3vl_rc_idx AS
SELECT id, count(*) AS n, max(chunk) AS max_chunk,
       bool_and(is_chunked) AS all_chunked, NOT bool_or(is_chunked) AS all_plain,
       min(hash) AS hash, (count(hash) = count(*) AND min(hash) = max(hash)) AS hash_ok,
       min(ev) AS ev, (count(ev) = count(*) AND min(ev) = max(ev)) AS ev_ok,
       min(mhash) AS mhash, (count(mhash) = count(*) AND min(mhash) = max(mhash)) AS mhash_ok
FROM s3vl_rc_vec WHERE NOT orphan GROUP BY id;

-- classify_index_analyze --
ANALYZE s3vl_rc_idx;

-- classify_keys --
CREATE TEMPORARY TABLE s3vl_rc_keys AS
WITH joined AS (
    SELECT coalesce(src.id, st.key) AS id,
           src.id IS NOT NULL AS in_source, src.hash AS src_hash,
           i.n, i.max_chunk, i.all_chunked, i.all_plain,
           i.hash AS idx_hash, i.hash_ok, i.ev AS idx_ev, i.ev_ok, i.mhash AS idx_mhash, i.mhash_ok,
           st.key IS NOT NULL AS has_state, st.content_hash, st.metadata_hash, st.embedding_version,
           st.chunk_count, st.chunked, st.synced_at, st.since,
           og.id IS NOT NULL AS orphan_cleanup
    FROM s3vl_rc_src AS src
    LEFT JOIN s3vl_rc_idx AS i ON i.id = src.id
    FULL JOIN s3vl_rc_state AS st ON st.key = src.id
    LEFT JOIN (SELECT DISTINCT id FROM s3vl_rc_vec WHERE source_gone) AS og ON og.id = st.key
), judged AS (
    SELECT j.*,
           coalesce((j.all_plain AND j.n = 1)
                    OR (j.all_chunked AND j.n = j.max_chunk + 1
                        AND NOT (j.has_state AND j.chunked AND j.chunk_count > j.n)), false) AS complete,
           coalesce(j.has_state AND j.synced_at >= j.since, false) AS recent
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
       (in_source AND NOT recent AND complete AND vectors_stale) AS stale,
       -- text, hash and version current, metadata not what the worker last wrote (or unknown:
       -- no state row, or one reconcile wrote)
       (in_source AND NOT recent AND complete AND NOT vectors_stale
        AND (NOT has_state OR NOT mhash_ok OR idx_mhash IS DISTINCT FROM metadata_hash)) AS metadata_drift,
       CASE
           WHEN recent THEN NULL
           WHEN has_state AND NOT want_state AND NOT orphan_cleanup THEN 'delete'
           WHEN NOT has_state AND want_state THEN 'insert'
           WHEN has_state AND want_state
                AND (content_hash, embedding_version, chunk_count, chunked)
                    IS DISTINCT FROM (want_hash, want_ev, want_chunks, want_chunked) THEN 'update'
       END AS drift,
       want_hash, want_ev, want_chunks, want_chunked
FROM (SELECT d.*,
             (NOT d.hash_ok OR d.idx_hash IS DISTINCT FROM d.src_hash
              OR NOT d.ev_ok OR d.idx_ev IS DISTINCT FROM %(ev)s
              OR d.all_chunked IS DISTINCT FROM %(chunked)s) AS vectors_stale
      FROM desired AS d) AS judged_vectors;

-- classify_keys_analyze --
ANALYZE s3vl_rc_keys;

-- classify_counts --
SELECT (SELECT count(*) FROM s3vl_rc_vec WHERE orphan) AS orphaned,
       (SELECT count(*) FROM s3vl_rc_keys WHERE missing) AS missing,
       (SELECT count(*) FROM s3vl_rc_keys WHERE stale) AS stale,
       (SELECT count(*) FROM s3vl_rc_keys WHERE metadata_drift) AS metadata_drift,
       (SELECT count(*) FROM s3vl_rc_keys WHERE drift IS NOT NULL) AS state_drift,
       (SELECT count(*) FROM s3vl_rc_src) AS source_rows,
       (SELECT count(*) FROM s3vl_rc_state) AS state_rows,
       (SELECT count(*) FROM s3vl_reconcile_scan) AS judged_vectors;

-- sample_orphaned --
SELECT key FROM s3vl_rc_vec WHERE orphan ORDER BY key LIMIT %(limit)s;

-- sample_missing --
SELECT id AS key FROM s3vl_rc_keys WHERE missing ORDER BY id LIMIT %(limit)s;

-- sample_stale --
SELECT id AS key FROM s3vl_rc_keys WHERE stale ORDER BY id LIMIT %(limit)s;

-- sample_metadata_drift --
SELECT id AS key FROM s3vl_rc_keys WHERE metadata_drift ORDER BY id LIMIT %(limit)s;

-- sample_state_drift --
SELECT id AS key FROM s3vl_rc_keys WHERE drift IS NOT NULL ORDER BY id LIMIT %(limit)s;

-- classify_queued --
-- Missing, stale and metadata-drift keys already waiting in the outbox (a worker has them).
SELECT count(*) FILTER (WHERE k.missing) AS missing, count(*) FILTER (WHERE k.stale) AS stale,
       count(*) FILTER (WHERE k.metadata_drift) AS metadata_drift
FROM s3vl_rc_keys AS k JOIN s3vl.outbox AS o ON o.sync_name = %(sync)s AND o.key = k.id AND o.status = 'pending'
WHERE k.missing OR k.stale OR k.metadata_drift;

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
-- Orphans numbered for batched deletion; vectors of keys the worker wrote since their listing
-- are left alone (the next run sees them again if they are still orphans).
CREATE TEMPORARY TABLE s3vl_rc_work AS
SELECT row_number() OVER (ORDER BY v.key) AS rn, v.key, v.id, v.source_gone
FROM s3vl_rc_vec AS v
WHERE v.orphan AND NOT EXISTS (
    SELECT 1 FROM s3vl.sync_state AS st LEFT JOIN s3vl_rc_scope AS sc ON sc.id = st.key
    WHERE st.sync_name = %(sync)s AND st.key = v.id AND st.synced_at >= coalesce(sc.since, %(since)s));

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
-- Metadata-drift keys are queued too (after s3vl.reconcile_forget_metadata, see enqueue_metadata):
-- the worker re-puts their metadata with the vectors it reads back, no embedding call.
CREATE TEMPORARY TABLE s3vl_rc_enqueue AS
SELECT row_number() OVER () AS rn, id, kind FROM (
    (SELECT k.id, 'missing' AS kind FROM s3vl_rc_keys AS k
     WHERE k.missing AND NOT EXISTS (SELECT 1 FROM s3vl.outbox AS o WHERE o.sync_name = %(sync)s AND o.key = k.id)
     ORDER BY k.id)
    UNION ALL
    (SELECT k.id, 'metadata_drift' FROM s3vl_rc_keys AS k
     WHERE k.metadata_drift AND NOT EXISTS (SELECT 1 FROM s3vl.outbox AS o WHERE o.sync_name = %(sync)s AND o.key = k.id)
     ORDER BY k.id)
    UNION ALL
    (SELECT k.id, 'stale' FROM s3vl_rc_keys AS k
     WHERE k.stale AND NOT EXISTS (SELECT 1 FROM s3vl.outbox AS o WHERE o.sync_name = %(sync)s AND o.key = k.id)
     ORDER BY k.id LIMIT %(max_stale)s)
) AS w;

-- enqueue_count --
SELECT count(*) AS total, count(*) FILTER (WHERE kind = 'stale') AS stale,
       count(*) FILTER (WHERE kind = 'metadata_drift') AS metadata_drift FROM s3vl_rc_enqueue;

-- enqueue_metadata --
SELECT s3vl.reconcile_forget_metadata(%(sync)s, %(since)s,
    ARRAY(SELECT id FROM s3vl_rc_enqueue WHERE kind = 'metadata_drift' AND rn > %(start)s AND rn <= %(end)s))
    AS forgotten;

-- enqueue_batch --
SELECT s3vl.enqueue(%(sync)s, ARRAY(SELECT id FROM s3vl_rc_enqueue WHERE rn > %(start)s AND rn <= %(end)s ORDER BY rn))
    AS enqueued;

-- Rolling reconcile (sync/ops/reconcile/rolling.py) ---------------------------------------------
-- A run lists some segments into s3vl_reconcile_scan (scan_*), then:
--   rolling_listed / _vanished   number the new listing; keys the segments' last listing had and
--                                this one has not (deleted behind s3vl's back, or by the worker)
--   rolling_clear / _store       replace the segments' part of s3vl.reconcile_snapshot
--   rolling_scope_*              the keys to judge: those listed or vanished in these segments,
--                                and the run's share (a hash bucket per segment) of the keys that
--                                have no vector at all; each with the oldest listing it relies on
--   rolling_judged               s3vl_reconcile_scan := the snapshot's vectors of those keys,
-- and the classification above runs with %(scoped)s over them.

-- rolling_cycle --
SELECT * FROM s3vl.reconcile_cycle(%(sync)s);

-- rolling_listed --
CREATE TEMPORARY TABLE s3vl_rc_listed AS
SELECT row_number() OVER () AS rn, s.key, s.seg::int AS seg,
       coalesce(s.sid, CASE WHEN %(chunked)s THEN regexp_replace(s.key, '#[0-9]+$', '') ELSE s.key END) AS id,
       s.sid, s.ev, s.hash, s.chunk, s.mhash, false AS gone
FROM s3vl_reconcile_scan AS s;

-- rolling_listed_index --
CREATE INDEX ON s3vl_rc_listed (rn);

-- rolling_listed_key_index --
CREATE INDEX ON s3vl_rc_listed (key);

-- rolling_vanished --
-- (tombstones included: a key missing since an earlier cycle is judged again when its segment is)
CREATE TEMPORARY TABLE s3vl_rc_vanished AS
SELECT sn.key, sn.seg::int AS seg, sn.id FROM s3vl.reconcile_snapshot AS sn
WHERE sn.sync_name = %(sync)s AND sn.seg = ANY (%(segs)s::int[])
  AND NOT EXISTS (SELECT FROM s3vl_rc_listed AS l WHERE l.key = sn.key);

-- rolling_tombstones --
INSERT INTO s3vl_rc_listed (rn, key, seg, id, gone)
SELECT (SELECT count(*) FROM s3vl_rc_listed) + row_number() OVER (), v.key, v.seg, v.id, true FROM s3vl_rc_vanished AS v;

-- rolling_listed_count --
SELECT count(*) AS n FROM s3vl_rc_listed;

-- rolling_drop --
DROP TABLE IF EXISTS pg_temp.s3vl_rc_listed, pg_temp.s3vl_rc_vanished, pg_temp.s3vl_rc_scope_n;

-- rolling_clear --
SELECT s3vl.reconcile_snapshot_clear(%(sync)s, %(segs)s::int[]) AS cleared;

-- rolling_store --
SELECT s3vl.reconcile_snapshot_put(%(sync)s, array_agg(key), array_agg(seg), array_agg(id), array_agg(sid),
                                   array_agg(ev), array_agg(hash), array_agg(chunk), array_agg(mhash),
                                   array_agg(gone)) AS stored
FROM s3vl_rc_listed WHERE rn > %(start)s AND rn <= %(end)s;

-- rolling_prune --
-- After the classification: tombstones of the listed segments whose key has neither a source nor
-- a state row any more are dropped (nothing left to be missing).
SELECT s3vl.reconcile_snapshot_forget(%(sync)s, ARRAY(
    SELECT v.key FROM s3vl_rc_vanished AS v WHERE NOT EXISTS (SELECT FROM s3vl_rc_keys AS k WHERE k.id = v.id)))
    AS forgotten;

-- rolling_scope_listed --
-- Keys with a vector in the listed segments or that lost one there: judged by the snapshot's
-- vectors, so `since` is the oldest listing among the segments that hold them (this run's for a
-- key all of whose vectors were just listed).
INSERT INTO s3vl_rc_scope (id, since)
SELECT k.id, coalesce(min((%(listed_at)s::timestamptz[])[sn.seg + 1]), %(oldest)s)
FROM (SELECT DISTINCT id FROM s3vl_rc_listed) AS k
LEFT JOIN s3vl.reconcile_snapshot AS sn ON sn.sync_name = %(sync)s AND sn.id = k.id
GROUP BY k.id;

-- rolling_scope_state --
-- State rows of the run's bucket without a vector or tombstone anywhere in the snapshot (their
-- vectors, if any were written since, could be in any segment: `since` is the oldest listing).
INSERT INTO s3vl_rc_scope (id, since)
SELECT st.key, %(oldest)s FROM s3vl.sync_state AS st
WHERE st.sync_name = %(sync)s AND (pg_catalog.hashtextextended(st.key, 0) & 15)::int = ANY (%(segs)s::int[])
  AND NOT EXISTS (SELECT FROM s3vl.reconcile_snapshot AS sn WHERE sn.sync_name = %(sync)s AND sn.id = st.key)
ON CONFLICT (id) DO NOTHING;

-- rolling_scope_source --
-- The same for source keys (read through the sync's own function, as its declarer, keys only).
INSERT INTO s3vl_rc_scope (id, since)
SELECT s.id, %(oldest)s FROM s3vl.reconcile_source_ids(%(sync)s) AS s
WHERE (pg_catalog.hashtextextended(s.id, 0) & 15)::int = ANY (%(segs)s::int[])
  AND NOT EXISTS (SELECT FROM s3vl.reconcile_snapshot AS sn WHERE sn.sync_name = %(sync)s AND sn.id = s.id)
ON CONFLICT (id) DO NOTHING;

-- rolling_scope_numbered --
CREATE TEMPORARY TABLE s3vl_rc_scope_n AS SELECT row_number() OVER (ORDER BY id) AS rn, id FROM s3vl_rc_scope;

-- rolling_scope_numbered_index --
CREATE INDEX ON s3vl_rc_scope_n (rn);

-- rolling_source_create --
CREATE TEMPORARY TABLE s3vl_rc_src (id text, hash text);

-- rolling_source_batch --
-- The judged keys' source rows, a batch of keys at a time (index lookups by the sync's own function).
INSERT INTO s3vl_rc_src (id, hash)
SELECT r.id, r.hash FROM s3vl.reconcile_source_rows(%(sync)s,
    ARRAY(SELECT id FROM s3vl_rc_scope_n WHERE rn > %(start)s AND rn <= %(end)s)) AS r;

-- rolling_scope_analyze --
ANALYZE s3vl_rc_scope;

-- rolling_judged --
-- What the classification reads as "the index": the snapshot's vectors of the judged keys (every
-- vector when %(scoped)s is false: the run that completes the first snapshot judges all keys).
INSERT INTO s3vl_reconcile_scan (key, sid, ev, hash, chunk, seg, mhash)
SELECT sn.key, sn.sid, sn.ev, sn.hash, sn.chunk, sn.seg, sn.mhash FROM s3vl.reconcile_snapshot AS sn
WHERE sn.sync_name = %(sync)s AND NOT sn.gone
  AND (NOT %(scoped)s OR EXISTS (SELECT FROM s3vl_rc_scope AS sc WHERE sc.id = sn.id));

-- rolling_scan_truncate --
TRUNCATE s3vl_reconcile_scan;

-- rolling_advance --
SELECT * FROM s3vl.reconcile_cycle_advance(%(sync)s, %(cycle)s, %(segs)s::int[], %(listed_at)s, %(found)s::jsonb,
                                           %(finished_at)s);

-- rolling_scope_count --
SELECT count(*) AS n FROM s3vl_rc_scope_n;
