-- s3vl reindex's queries (sync/ops/reindex.py) over sql/idempotent/300-reindex.sql.

-- reindex_sync --
-- The sync, its registered index and where that index lives.
SELECT s.name, s.index_name, s.embedding_model, s.dimensions, i.index_arn, i.region, i.bucket_name,
       i.index_name AS physical_name, i.distance_metric
FROM s3vl.syncs s JOIN s3vl.indexes i ON i.name = s.index_name WHERE s.name = %(sync)s;

-- reindex_shadow --
-- The shadow sync of a reindex in progress, and its new index.
SELECT s.name, i.index_arn, s.embedding_model, s.dimensions
FROM s3vl.syncs s JOIN s3vl.indexes i ON i.name = s.index_name WHERE s.name = s3vl.reindex_shadow_name(%(sync)s);

-- reindex_model --
-- The dimensions a model produces (no row: s3vl does not know the model).
SELECT dimensions FROM s3vl.embedding_model(%(model)s);

-- reindex_prepare --
SELECT (s3vl.reindex_prepare(%(sync)s, %(index_arn)s, %(model)s, %(dimensions)s, %(metric)s)).name;

-- reindex_pending --
SELECT pending, failed FROM s3vl.sync_status WHERE sync_name = %(sync)s;

-- reindex_switch --
SELECT s3vl.reindex_switch(%(sync)s) AS old_index_arn;

-- reindex_abort --
SELECT s3vl.reindex_abort(%(sync)s) AS new_index_arn;

-- embedding_models --
SELECT model, dimensions FROM s3vl.embedding_models() ORDER BY model;
