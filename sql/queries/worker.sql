-- The sync worker's queries (sync/datapath/): definitions, the queue protocol of
-- sql/idempotent/240-sync-queue.sql, and logical capture (sql/idempotent/220-sync-capture.sql).

-- sync_definition --
-- One sync as the worker uses it, with its index's ARN.
SELECT s.name, s.source::text AS source, s.key_columns, s.index_name, i.index_arn, s.text_expression,
       s.metadata_columns, s.embedding_model, s.dimensions, s.normalize_vectors, s.chunk_size,
       s.chunk_overlap, s.store_text, s.embedding_version, s.max_attempts
FROM s3vl.syncs s JOIN s3vl.indexes i ON i.name = s.index_name
WHERE s.name = %(name)s;

-- sync_names --
-- Which of these names are syncs (to refuse an unknown --sync before any work).
SELECT name FROM s3vl.syncs WHERE name = ANY (%(names)s::text[]);

-- lease --
SELECT sync_name, key, version, attempts FROM s3vl.lease(%(worker)s, %(batch)s, %(lease_seconds)s, %(only_sync)s);

-- load --
-- Current rows, state and per-row render errors of leased keys (s3vl.load_v2).
SELECT key, present, content, metadata, content_hash, has_state, state_hash, metadata_hash,
       embedding_version, chunk_count, chunked, error
FROM s3vl.load_v2(%(sync)s, %(keys)s::text[]);

-- begin_write --
SELECT s3vl.begin_write(%(sync)s, %(writes)s::jsonb) AS n;

-- complete --
SELECT completed, requeued FROM s3vl.complete(%(sync)s, %(worker)s, %(results)s::jsonb);

-- fail --
SELECT s3vl.fail(%(sync)s, %(worker)s, %(failures)s::jsonb, %(retry_after)s) AS n;

-- release --
SELECT s3vl.release(%(sync)s, %(worker)s, %(keys)s::text[]) AS n;

-- extend_lease --
SELECT s3vl.extend_lease(%(sync)s, %(worker)s, %(keys)s::text[], %(lease_seconds)s) AS n;

-- pause_sync --
SELECT s3vl.pause_sync(%(sync)s, %(error)s, %(seconds)s) AS paused_until;

-- retry_failed --
SELECT s3vl.retry_failed(%(sync)s) AS n;

-- resync --
SELECT s3vl.resync(%(sync)s) AS n;

-- pending --
-- Keys not yet applied (pending, including leased), of one sync or of all.
SELECT count(*) AS n FROM s3vl.outbox
WHERE status = 'pending' AND (%(sync)s::text IS NULL OR sync_name = %(sync)s);

-- paused_syncs --
-- Syncs that failed as a whole and wait for their pause to end, with why.
SELECT name, paused_until, last_error FROM s3vl.syncs
WHERE paused_until > now() AND (%(sync)s::text IS NULL OR name = %(sync)s)
ORDER BY name;

-- capture_state --
-- The capture slot's name, whether a logical sync wants it, and whether it exists.
SELECT s3vl.capture_slot_name() AS slot,
       EXISTS (SELECT FROM s3vl.syncs WHERE capture = 'logical') AS wanted,
       EXISTS (SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = s3vl.capture_slot_name()) AS present;

-- capture_lock --
-- One slot reader at a time (0x53335643 = "S3VC"), for the rest of the transaction.
SELECT pg_catalog.pg_try_advisory_xact_lock(1395873347) AS locked;

-- capture_poll --
SELECT changes, enqueued, upto_lsn FROM s3vl.capture_logical(%(max_changes)s);

-- capture_consume --
SELECT s3vl.capture_consume(%(upto_lsn)s) AS consumed;

-- capture_create_slot --
SELECT pg_catalog.pg_create_logical_replication_slot(%(slot)s, 'wal2json');

-- capture_resync --
-- Changes before the slot existed are not in it: queue every logical sync in full.
SELECT coalesce(sum(s3vl.resync(name)), 0) AS n FROM s3vl.syncs WHERE capture = 'logical';

-- capture_drop_slot --
SELECT pg_catalog.pg_drop_replication_slot(%(slot)s);
