-- What operators and readers see of the syncs: s3vl.sync_status and s3vl.sync_failures.
-- The views read s3vl's tables with their owner's privileges, so they must show nothing that a
-- reader could not read anyway: an error message may quote a source row's values (e.g. invalid
-- input syntax for type integer: "..."), so it is shown only to a role that may read every column
-- the sync reads.

-- May the current role read every column of the source that the sync reads?
CREATE OR REPLACE FUNCTION s3vl._may_read_source(source regclass, read_columns text[])
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = source)
           AND coalesce((SELECT bool_and(pg_catalog.has_column_privilege(current_user, source, a.attnum, 'SELECT'))
                         FROM pg_catalog.pg_attribute a
                         WHERE a.attrelid = source AND a.attname = ANY (read_columns) AND NOT a.attisdropped), true)
$$;

CREATE OR REPLACE VIEW s3vl.sync_status AS
SELECT s.name AS sync_name, s.source, s.index_name, s.embedding_model, s.embedding_version, s.capture,
       coalesce(q.pending, 0) AS pending, coalesce(q.leased, 0) AS leased, coalesce(q.failed, 0) AS failed,
       q.oldest_pending_age, s.last_success_at AS last_success,
       coalesce(st.synced_keys, 0) AS synced_keys,
       rr.finished_at AS last_reconcile_at, rr.report AS last_reconcile,
       coalesce(q.retrying, 0) AS retrying,  -- failed once, waiting for its backoff (s3vl.fail retry_after)
       CASE WHEN s.capture = 'logical' THEN (
           SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), rs.confirmed_flush_lsn)::bigint
           FROM pg_catalog.pg_replication_slots rs WHERE rs.slot_name = s3vl.capture_slot_name())
       END AS capture_lag_bytes,             -- WAL the capture slot has not consumed yet (logical syncs)
       s.owner,                              -- the role whose privileges the sync's expressions run with
       CASE WHEN s.paused_until > now() THEN s.paused_until END AS paused_until,
       s.last_error AS sync_error,           -- why the sync failed as a whole (s3vl.pause_sync), until it succeeds
       s.last_error_at AS sync_error_at,
       rc.last_cycle AS last_reconcile_cycle, -- the last complete rolling reconcile cycle (found, when)
       CASE WHEN rc.sync_name IS NOT NULL THEN rc.next_segment::numeric / 16 END AS reconcile_cycle_done
FROM s3vl.syncs s
LEFT JOIN s3vl.reconcile_cycles rc ON rc.sync_name = s.name
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE o.status = 'pending') AS pending,
           count(*) FILTER (WHERE o.status = 'pending' AND o.lease_until > now() AND o.leased_by IS NOT NULL) AS leased,
           count(*) FILTER (WHERE o.status = 'pending' AND o.lease_until > now() AND o.leased_by IS NULL) AS retrying,
           count(*) FILTER (WHERE o.status = 'failed') AS failed,
           now() - min(o.enqueued_at) FILTER (WHERE o.status = 'pending') AS oldest_pending_age
    FROM s3vl.outbox o WHERE o.sync_name = s.name) AS q ON true
LEFT JOIN LATERAL (SELECT count(*) AS synced_keys FROM s3vl.sync_state x WHERE x.sync_name = s.name) AS st ON true
LEFT JOIN LATERAL (
    SELECT r.finished_at, r.report FROM s3vl.reconcile_runs r
    WHERE r.sync_name = s.name AND r.finished_at IS NOT NULL
    ORDER BY r.finished_at DESC LIMIT 1) AS rr ON true;
COMMENT ON VIEW s3vl.sync_status IS 'Per sync: queue (pending, leased, failed), lag, last success, last reconcile, owner, pause.';

-- Failed keys with their last error (for s3vl status and operators); the error only for roles
-- that may read the sync's columns of the source.
CREATE OR REPLACE VIEW s3vl.sync_failures AS
SELECT o.sync_name, o.key, o.attempts,
       CASE WHEN s3vl._may_read_source(s.source, s.read_columns) THEN o.last_error
            ELSE '(hidden: the error may quote values of ' || s.source_name || ', which you may not read)' END AS last_error,
       o.enqueued_at
FROM s3vl.outbox o JOIN s3vl.syncs s ON s.name = o.sync_name
WHERE o.status = 'failed';
COMMENT ON VIEW s3vl.sync_failures IS 'Failed keys and their last error (shown to roles that may read the sync''s source columns).';
