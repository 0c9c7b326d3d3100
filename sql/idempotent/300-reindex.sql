-- Reindex (s3vl reindex, sync/ops/reindex.py): move a sync to a new index (a new model or new
-- dimensions) without queries ever seeing a half-built index.
--
--   1. s3vl.reindex_prepare: register the new (empty) index under a shadow name and create a
--      shadow sync "<sync>_rx" with the same definition and owner and the new model; its triggers
--      capture live changes and its backfill queues every row. The original sync keeps serving the
--      old index, and queries by the registered name keep using the old index.
--   2. the worker backfills the shadow; reconcile verifies it (no missing, stale or orphaned).
--   3. s3vl.reindex_switch, in one transaction: the registered name now points at the new index,
--      the sync takes the new model and the shadow's state, the shadow goes. Queries see the old
--      index up to the commit and the complete new one after it.
-- The old index is left in place (sync/ops/reindex.py deletes it only with --drop-old).
-- As with create_sync and drop_sync, the caller attaches and detaches the shadow's triggers (it
-- needs the TRIGGER privilege on the source, and to own it); s3vl's functions do the rest.

-- The shadow sync's name for a sync ('_rx' suffix; sync names are at most 40 characters).
CREATE OR REPLACE FUNCTION s3vl.reindex_shadow_name(sync_name text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT sync_name || '_rx' $$;

-- Register the new index under the shadow name and store the shadow sync, owned like the original.
CREATE OR REPLACE FUNCTION s3vl._reindex_declare(sync_name text, new_index_arn text, embedding_model text,
                                                 dimensions int, distance_metric text)
RETURNS s3vl.syncs
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs;
    old s3vl.indexes;
    shadow s3vl.syncs;
    p record;
BEGIN
    SELECT * INTO s FROM s3vl.syncs x WHERE x.name = _reindex_declare.sync_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync "%" does not exist', sync_name USING ERRCODE = 'undefined_object';
    END IF;
    s := s3vl._live_sync(s.name);
    IF length(s3vl.reindex_shadow_name(sync_name)) > 40 THEN
        RAISE EXCEPTION 'sync name "%" is too long to reindex (at most 37 characters)', sync_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM s3vl.syncs x WHERE x.name = s3vl.reindex_shadow_name(sync_name)) THEN
        RAISE EXCEPTION 'a reindex of sync "%" is already in progress (shadow sync "%")', sync_name,
            s3vl.reindex_shadow_name(sync_name)
            USING ERRCODE = 'duplicate_object', HINT = 'Re-run s3vl reindex to resume it, or s3vl reindex --abort.';
    END IF;
    SELECT * INTO old FROM s3vl.indexes i WHERE i.name = s.index_name;
    SELECT * INTO p FROM s3vl._parse_index_arn(new_index_arn);
    INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, dimension,
                              distance_metric, embedding_model, searchable_keys, non_filterable_keys, description)
    VALUES (left(old.name, 58) || '.reidx', new_index_arn, p.region, p.account_id, p.bucket_name, p.index_name,
            dimensions, coalesce(distance_metric, old.distance_metric), embedding_model, old.searchable_keys,
            old.non_filterable_keys, format('reindex of %s (in progress)', old.name));
    shadow := s;
    shadow.name := s3vl.reindex_shadow_name(sync_name);
    shadow.index_name := left(old.name, 58) || '.reidx';
    shadow.embedding_model := embedding_model;
    shadow.dimensions := dimensions;
    shadow.last_success_at := NULL;
    shadow.paused_until := NULL;
    shadow.last_error := NULL;
    shadow.last_error_at := NULL;
    RETURN s3vl._store_sync(shadow, s.read_columns, s.owner);
END
$$;

CREATE OR REPLACE FUNCTION s3vl.reindex_prepare(
    sync_name       text,
    new_index_arn   text,
    embedding_model text,
    dimensions      int,
    distance_metric text DEFAULT NULL)
RETURNS s3vl.syncs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shadow s3vl.syncs := s3vl._reindex_declare(sync_name, new_index_arn, embedding_model, dimensions, distance_metric);
BEGIN
    IF shadow.capture = 'trigger' THEN
        PERFORM s3vl._install_triggers(shadow);
    END IF;
    PERFORM s3vl.resync(shadow.name);
    RETURN shadow;
END
$$;
COMMENT ON FUNCTION s3vl.reindex_prepare(text, text, text, int, text)
    IS 'Start a reindex: register the new index under a shadow name and backfill it through a shadow sync.';

-- Switch a sync to its shadow's index atomically; returns the old index ARN.
CREATE OR REPLACE FUNCTION s3vl._reindex_switch(sync_name text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs;
    r s3vl.syncs;
    shadow text := s3vl.reindex_shadow_name(sync_name);
    old s3vl.indexes;
    neu s3vl.indexes;
BEGIN
    -- lock both definitions (in name order: main < main_rx) so nothing alters them meanwhile
    SELECT * INTO s FROM s3vl.syncs x WHERE x.name = _reindex_switch.sync_name FOR UPDATE;
    SELECT * INTO r FROM s3vl.syncs x WHERE x.name = shadow FOR UPDATE;
    IF s.name IS NULL OR r.name IS NULL THEN
        RAISE EXCEPTION 'no reindex of sync "%" is in progress', sync_name USING ERRCODE = 'undefined_object';
    END IF;
    IF (s.source, s.key_columns, s.text_expression, s.metadata_columns, s.chunk_size, s.chunk_overlap,
        s.normalize_vectors, s.store_text, s.label, s.owner)
       IS DISTINCT FROM
       (r.source, r.key_columns, r.text_expression, r.metadata_columns, r.chunk_size, r.chunk_overlap,
        r.normalize_vectors, r.store_text, r.label, r.owner) THEN
        RAISE EXCEPTION 'sync "%" was altered during its reindex', sync_name USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Abort this reindex (s3vl reindex --abort) and start it again.';
    END IF;
    IF EXISTS (SELECT FROM s3vl.outbox o WHERE o.sync_name = shadow AND o.status = 'failed') THEN
        RAISE EXCEPTION 'the backfill of sync "%" has failed keys', shadow USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'See s3vl.sync_failures; s3vl retry-failed, then re-run s3vl reindex.';
    END IF;
    SELECT * INTO old FROM s3vl.indexes i WHERE i.name = s.index_name FOR UPDATE;
    SELECT * INTO neu FROM s3vl.indexes i WHERE i.name = r.index_name FOR UPDATE;

    -- carry over what the shadow knows: its state, and changes it has not processed yet
    CREATE TEMPORARY TABLE s3vl_rx_state ON COMMIT DROP AS
        SELECT * FROM s3vl.sync_state st WHERE st.sync_name = shadow;
    PERFORM s3vl._enqueue_select(s.name, format(
        'SELECT key FROM s3vl.outbox WHERE sync_name = %L', shadow));
    -- batches the worker leased under the old definition must not complete as current
    UPDATE s3vl.outbox o SET version = o.version + 1
    WHERE o.sync_name = s.name AND o.lease_until > now();
    PERFORM s3vl._undeclare_sync(shadow);
    DELETE FROM s3vl.indexes i WHERE i.name = neu.name;

    UPDATE s3vl.indexes i SET index_arn = neu.index_arn, region = neu.region, account_id = neu.account_id,
        bucket_name = neu.bucket_name, index_name = neu.index_name, dimension = neu.dimension,
        distance_metric = neu.distance_metric, embedding_model = neu.embedding_model, updated_at = now()
    WHERE i.name = old.name;
    -- the shadow's definition was checked when it was stored; only the model part differs
    UPDATE s3vl.syncs x SET embedding_model = r.embedding_model, dimensions = r.dimensions,
        embedding_version = r.embedding_version, updated_at = now()
    WHERE x.name = s.name;
    DELETE FROM s3vl.sync_state st WHERE st.sync_name = s.name;
    UPDATE s3vl_rx_state SET sync_name = s.name;
    INSERT INTO s3vl.sync_state SELECT * FROM s3vl_rx_state;
    RETURN old.index_arn;
END
$$;

CREATE OR REPLACE FUNCTION s3vl.reindex_switch(sync_name text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r s3vl.syncs;
BEGIN
    SELECT * INTO r FROM s3vl.syncs x WHERE x.name = s3vl.reindex_shadow_name(sync_name);
    IF FOUND THEN
        PERFORM s3vl._drop_triggers(r);
    END IF;
    RETURN s3vl._reindex_switch(sync_name);
END
$$;
COMMENT ON FUNCTION s3vl.reindex_switch(text)
    IS 'Finish a reindex: point the registered index name at the new index and move the sync onto it, atomically.';

-- Abandon a reindex: the shadow sync and its registration go (the new index itself is left).
CREATE OR REPLACE FUNCTION s3vl._reindex_abort(sync_name text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r s3vl.syncs;
    arn text;
BEGIN
    SELECT * INTO r FROM s3vl.syncs x WHERE x.name = s3vl.reindex_shadow_name(sync_name) FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no reindex of sync "%" is in progress', sync_name USING ERRCODE = 'undefined_object';
    END IF;
    SELECT i.index_arn INTO arn FROM s3vl.indexes i WHERE i.name = r.index_name;
    PERFORM s3vl._undeclare_sync(r.name);
    DELETE FROM s3vl.indexes i WHERE i.name = r.index_name;
    RETURN arn;
END
$$;

CREATE OR REPLACE FUNCTION s3vl.reindex_abort(sync_name text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r s3vl.syncs;
BEGIN
    SELECT * INTO r FROM s3vl.syncs x WHERE x.name = s3vl.reindex_shadow_name(sync_name);
    IF FOUND THEN
        PERFORM s3vl._drop_triggers(r);
    END IF;
    RETURN s3vl._reindex_abort(sync_name);
END
$$;
COMMENT ON FUNCTION s3vl.reindex_abort(text) IS 'Abandon a reindex (shadow sync and registration); returns the new index ARN.';
