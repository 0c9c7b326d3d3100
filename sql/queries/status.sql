-- What s3vl status, the worker's gauges and its CloudWatch EMF lines read (sync/ops/status.py,
-- sync/telemetry/emf.py): the views of sql/idempotent/250-sync-status.sql.

-- sync_status --
SELECT sync_name, source::text AS source, index_name, embedding_model, embedding_version, capture,
       pending, leased, retrying, failed, extract(epoch FROM oldest_pending_age)::float8 AS lag_seconds,
       last_success, synced_keys, last_reconcile_at, last_reconcile, capture_lag_bytes,
       owner::text AS owner, paused_until, sync_error
FROM s3vl.sync_status ORDER BY 1;

-- sync_failures --
SELECT sync_name, key, attempts, last_error FROM s3vl.sync_failures ORDER BY sync_name, key LIMIT %(limit)s;
