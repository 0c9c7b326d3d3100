-- The index registry: friendly names for S3 Vectors indexes (table in sql/incremental/100-query.sql).

-- Parts of an S3 Vectors index ARN, or the invalid_index_arn error.
CREATE OR REPLACE FUNCTION s3vl._parse_index_arn(index_arn text)
RETURNS TABLE (region text, account_id text, bucket_name text, index_name text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m text[];
BEGIN
    m := regexp_match(index_arn,
        '^arn:aws[-a-z0-9]*:s3vectors:([a-z0-9-]+):([0-9]{12}):bucket/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/index/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$');
    IF m IS NULL THEN
        PERFORM s3vl._raise('invalid_index_arn',
            format('%s is not an S3 Vectors index ARN', coalesce(quote_literal(index_arn), 'NULL')));
    END IF;
    RETURN QUERY SELECT m[1], m[2], m[3], m[4];
END
$$;

-- The registry row for a name (or a registered ARN); an unregistered ARN gives a row with only
-- the ARN's parts, so every function can address an index "by registered name or by ARN".
CREATE OR REPLACE FUNCTION s3vl._resolve(index_name text, index_arn text DEFAULT NULL)
RETURNS s3vl.indexes
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r s3vl.indexes;
    arn text;
    p record;
BEGIN
    PERFORM s3vl._config();  -- not configured: say so before anything else
    IF index_name IS NOT NULL AND index_arn IS NOT NULL THEN
        PERFORM s3vl._raise('invalid_argument', 'give index_name or index_arn, not both');
    END IF;
    IF index_name IS NULL AND index_arn IS NULL THEN
        PERFORM s3vl._raise('invalid_argument', 'index_name (a registered name or an index ARN) is required');
    END IF;
    arn := coalesce(index_arn, CASE WHEN index_name LIKE 'arn:%' THEN index_name END);
    IF arn IS NULL THEN
        SELECT * INTO r FROM s3vl.indexes i WHERE i.name = _resolve.index_name;
        IF NOT FOUND THEN
            PERFORM s3vl._raise('index_not_registered', format('index %s is not registered', quote_literal(index_name)));
        END IF;
        RETURN r;
    END IF;
    SELECT * INTO r FROM s3vl.indexes i WHERE i.index_arn = arn;
    IF FOUND THEN
        RETURN r;
    END IF;
    SELECT * INTO p FROM s3vl._parse_index_arn(arn);
    IF (SELECT c.registered_indexes_only FROM s3vl.config c) THEN
        PERFORM s3vl._raise('index_not_registered', format('index %s is not registered', arn),
            'this database queries registered indexes only (s3vl.configure(..., registered_indexes_only => true))');
    END IF;
    r.name := NULL;
    r.index_arn := arn;
    r.region := p.region;
    r.account_id := p.account_id;
    r.bucket_name := p.bucket_name;
    r.index_name := p.index_name;
    RETURN r;
END
$$;

CREATE OR REPLACE FUNCTION s3vl.register_index(
    name text,
    index_arn text,
    description text DEFAULT NULL,
    embedding_model text DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    info jsonb;
    other text;
    dims integer[];
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z][A-Za-z0-9_.-]*$' OR length(name) NOT BETWEEN 2 AND 64 THEN
        PERFORM s3vl._raise('invalid_argument',
            format('index name %s is invalid', coalesce(quote_literal(name), 'NULL')),
            '2 to 64 characters: a letter, then letters, digits, "_", "-" or "."');
    END IF;
    SELECT * INTO p FROM s3vl._parse_index_arn(index_arn);
    IF embedding_model IS NOT NULL AND (embedding_model !~ '^[A-Za-z0-9._:/-]+$' OR length(embedding_model) > 2048) THEN
        PERFORM s3vl._raise('invalid_argument', format('embedding_model %s is not a Bedrock model id', quote_literal(embedding_model)));
    END IF;
    SELECT i.name INTO other FROM s3vl.indexes i WHERE i.index_arn = register_index.index_arn AND i.name <> register_index.name;
    IF FOUND THEN
        PERFORM s3vl._raise('invalid_argument', format('index ARN %s is already registered as %s', index_arn, quote_literal(other)),
            'unregister that name first, or keep using it');
    END IF;
    -- Ask S3 Vectors (through the Lambda): the index must exist; record what it is.
    info := s3vl._invoke('get_index', jsonb_build_object('index_arn', index_arn));
    IF embedding_model IS NOT NULL AND to_regprocedure('s3vl.embedding_model(text)') IS NOT NULL THEN
        EXECUTE 'SELECT dimensions FROM s3vl.embedding_model($1)' INTO dims USING embedding_model;
        IF dims IS NULL THEN
            PERFORM s3vl._raise('invalid_argument', format('unknown embedding model %s', quote_literal(embedding_model)),
                (SELECT 'known models: ' || string_agg(model, ', ') FROM s3vl.embedding_models()));
        ELSIF NOT (info ->> 'dimension')::integer = ANY (dims) THEN
            PERFORM s3vl._raise('dimension_mismatch',
                format('%s does not produce %s-dimensional vectors (it supports %s)', embedding_model, info ->> 'dimension', dims));
        END IF;
    END IF;
    INSERT INTO s3vl.indexes AS i (name, index_arn, region, account_id, bucket_name, index_name, dimension,
                                   distance_metric, embedding_model, searchable_keys, non_filterable_keys,
                                   description, registered_at, updated_at)
    VALUES (register_index.name, register_index.index_arn, p.region, p.account_id, p.bucket_name, p.index_name,
            (info ->> 'dimension')::integer, info ->> 'distance_metric', register_index.embedding_model,
            ARRAY(SELECT jsonb_array_elements_text(coalesce(info -> 'searchable_keys', '[]'))),
            ARRAY(SELECT jsonb_array_elements_text(coalesce(info -> 'non_filterable_keys', '[]'))),
            register_index.description, now(), now())
    ON CONFLICT ON CONSTRAINT indexes_pkey DO UPDATE SET
        index_arn = EXCLUDED.index_arn, region = EXCLUDED.region, account_id = EXCLUDED.account_id,
        bucket_name = EXCLUDED.bucket_name, index_name = EXCLUDED.index_name, dimension = EXCLUDED.dimension,
        distance_metric = EXCLUDED.distance_metric,
        embedding_model = coalesce(EXCLUDED.embedding_model, i.embedding_model),
        searchable_keys = EXCLUDED.searchable_keys, non_filterable_keys = EXCLUDED.non_filterable_keys,
        description = coalesce(EXCLUDED.description, i.description), updated_at = now();
    RAISE NOTICE 's3vl: index % registered (% dimensions, %)', name, info ->> 'dimension', info ->> 'distance_metric';
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION s3vl.unregister_index(name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM s3vl.indexes i WHERE i.name = unregister_index.name;
    IF NOT FOUND THEN
        PERFORM s3vl._raise('index_not_registered', format('index %s is not registered', coalesce(quote_literal(name), 'NULL')));
    END IF;
    RETURN true;
EXCEPTION WHEN foreign_key_violation THEN
    PERFORM s3vl._raise('invalid_argument', format('index %s is used by a sync', quote_literal(name)),
        'drop the sync first (s3vl.drop_sync), or point it at another index');
    RETURN false;
END
$$;

CREATE OR REPLACE FUNCTION s3vl.list_indexes()
RETURNS TABLE (name text, index_arn text, region text, bucket_name text, index_name text, dimension integer,
               distance_metric text, embedding_model text, searchable_keys text[], description text,
               registered_at timestamptz, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.name, i.index_arn, i.region, i.bucket_name, i.index_name, i.dimension, i.distance_metric,
           i.embedding_model, i.searchable_keys, i.description, i.registered_at, i.updated_at
    FROM s3vl.indexes i ORDER BY i.name
$$;

COMMENT ON FUNCTION s3vl.register_index(text, text, text, text) IS
    'Register an S3 Vectors index under a name: validates the ARN, records dimension and metric (GetIndex) and the embedding model.';
COMMENT ON FUNCTION s3vl.unregister_index(text) IS 'Remove a name from the registry (the index itself is untouched).';
COMMENT ON FUNCTION s3vl.list_indexes() IS 'The registered indexes.';
