-- Query functions: query_vectors, query_text, similar_to, get_vectors, list_vectors.
-- Each resolves the index (registered name or ARN), checks what SQL can check cheaply, asks the
-- query Lambda (s3vl._invoke) and turns its JSON result into rows. Columns and parameter names
-- follow the published Aurora + S3 Vectors walkthrough, so its SQL runs unchanged.

-- Checks shared by the vector-taking functions; raises invalid_argument / dimension_mismatch.
CREATE OR REPLACE FUNCTION s3vl._check_vector(v double precision[], idx s3vl.indexes, what text DEFAULT 'query_vector')
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad integer;
BEGIN
    IF v IS NULL OR cardinality(v) = 0 THEN
        PERFORM s3vl._raise('invalid_argument', what || ' must be a non-empty array of numbers');
    END IF;
    IF array_ndims(v) <> 1 THEN
        PERFORM s3vl._raise('invalid_argument', what || ' must be a one-dimensional array');
    END IF;
    SELECT min(o) INTO bad FROM unnest(v) WITH ORDINALITY AS u(x, o)
    WHERE x IS NULL OR x = 'NaN'::float8 OR x IN ('Infinity'::float8, '-Infinity'::float8);
    IF bad IS NOT NULL THEN
        PERFORM s3vl._raise('invalid_argument',
            format('%s[%s] is %s: NULL, NaN and infinity are not allowed', what, bad, coalesce(v[bad]::text, 'NULL')));
    END IF;
    IF idx.dimension IS NOT NULL AND cardinality(v) <> idx.dimension THEN
        PERFORM s3vl._raise('dimension_mismatch',
            format('%s has %s dimensions but index %s has %s', what, cardinality(v),
                   coalesce(quote_literal(idx.name), idx.index_arn), idx.dimension));
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION s3vl._check_top_k(top_k integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF top_k IS NULL OR top_k NOT BETWEEN 1 AND 10000 THEN
        PERFORM s3vl._raise('invalid_argument', format('top_k must be between 1 and 10000, got %s', coalesce(top_k::text, 'NULL')));
    END IF;
END
$$;

-- A metadata filter's shape, checked before the Lambda is called, so that what S3 Vectors would
-- refuse fails at once with invalid_filter: not a JSON object, nested deeper than 8 filter
-- objects (the query Lambda's MAX_FILTER_DEPTH: 17 JSON levels below the top), a null (a filter
-- matches values; "key": {"$exists": false} matches their absence), or a number beyond a
-- double's range. The Lambda checks the operators and operands themselves.
CREATE OR REPLACE FUNCTION s3vl._check_filter(f jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF f IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(f) <> 'object' THEN
        PERFORM s3vl._raise('invalid_filter', format('metadata_filter must be a JSON object, not %s', jsonb_typeof(f)));
    END IF;
    IF jsonb_path_exists(f, 'strict $.**{18 to last}') THEN
        PERFORM s3vl._raise('invalid_filter', 'metadata_filter is nested too deep: at most 8 levels of $and / $or');
    END IF;
    IF jsonb_path_exists(f, 'strict $.** ? (@ == null)') THEN
        PERFORM s3vl._raise('invalid_filter', 'metadata_filter holds a JSON null: a filter matches values',
            'To match vectors without a key use {"key": {"$exists": false}}.');
    END IF;
    IF EXISTS (SELECT FROM jsonb_path_query(f, 'strict $.** ? (@.type() == "number")') AS n(v)
               WHERE abs(n.v::text::numeric) > 1.7976931348623157e308) THEN
        PERFORM s3vl._raise('invalid_filter', 'metadata_filter holds a number beyond a double''s range (about 1.8e308)');
    END IF;
END
$$;

-- A text array argument, one-dimensional (PostgreSQL's array functions refuse others).
CREATE OR REPLACE FUNCTION s3vl._check_list(v text[], what text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF v IS NOT NULL AND array_ndims(v) > 1 THEN
        PERFORM s3vl._raise('invalid_argument', format('%s must be a one-dimensional array, not %s-dimensional',
                                                       what, array_ndims(v)));
    END IF;
END
$$;

-- The optional restriction to source IDs chosen in SQL (s3vl_id metadata + $in, or over-fetch).
CREATE OR REPLACE FUNCTION s3vl._prefilter(source_ids text[], prefilter text, overfetch_factor integer)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF source_ids IS NULL THEN
        RETURN '{}'::jsonb;
    END IF;
    PERFORM s3vl._check_list(source_ids, 'source_ids');
    IF cardinality(source_ids) = 0 THEN
        PERFORM s3vl._raise('invalid_argument', 'source_ids is empty: no candidate can match',
            'pass NULL to query without a pre-filter');
    END IF;
    IF coalesce(prefilter, 'auto') NOT IN ('auto', 'filter', 'overfetch') THEN
        PERFORM s3vl._raise('invalid_argument', format('prefilter must be auto, filter or overfetch, got %s', quote_literal(prefilter)));
    END IF;
    RETURN jsonb_build_object('source_ids', to_jsonb(source_ids), 'prefilter', coalesce(prefilter, 'auto'),
                              'overfetch_factor', coalesce(overfetch_factor, 10));
END
$$;

-- Rows from a query result's "vectors" array.
CREATE OR REPLACE FUNCTION s3vl._query_rows(result jsonb, return_metadata boolean)
RETURNS TABLE (vector_id text, similarity_score double precision, distance double precision, metadata jsonb, score double precision)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT v ->> 'key', (v ->> 'similarity_score')::float8, (v ->> 'distance')::float8,
           CASE WHEN $2 THEN coalesce(nullif(v -> 'metadata', 'null'::jsonb), '{}'::jsonb) END,
           (v ->> 'score')::float8
    FROM jsonb_array_elements(coalesce($1 -> 'vectors', '[]'::jsonb)) WITH ORDINALITY AS t(v, n)
    ORDER BY n
$$;

CREATE OR REPLACE FUNCTION s3vl.query_vectors(
    query_vector double precision[],
    index_name text DEFAULT NULL,
    index_arn text DEFAULT NULL,
    top_k integer DEFAULT 10,
    return_metadata boolean DEFAULT true,
    metadata_filter jsonb DEFAULT NULL,
    source_ids text[] DEFAULT NULL,
    prefilter text DEFAULT 'auto',
    overfetch_factor integer DEFAULT 10
) RETURNS TABLE (vector_id text, similarity_score double precision, distance double precision, metadata jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx s3vl.indexes := s3vl._resolve(index_name, index_arn);
    result jsonb;
BEGIN
    PERFORM s3vl._check_vector(query_vector, idx);
    PERFORM s3vl._check_top_k(top_k);
    PERFORM s3vl._check_filter(metadata_filter);
    result := s3vl._invoke('query_vectors', jsonb_strip_nulls(jsonb_build_object(
        'index_arn', idx.index_arn,
        'query_vector', to_jsonb(query_vector),
        'dimension', idx.dimension,
        'top_k', top_k,
        'return_metadata', return_metadata,
        'metadata_filter', metadata_filter)) || s3vl._prefilter(source_ids, prefilter, overfetch_factor));
    RETURN QUERY SELECT r.vector_id, r.similarity_score, r.distance, r.metadata
                 FROM s3vl._query_rows(result, coalesce(return_metadata, true)) AS r;
END
$$;

CREATE OR REPLACE FUNCTION s3vl.query_text(
    index_name text,
    query_text text,
    top_k integer DEFAULT 10,
    metadata_filter jsonb DEFAULT NULL,
    return_metadata boolean DEFAULT true,
    hybrid boolean DEFAULT NULL,
    source_ids text[] DEFAULT NULL,
    prefilter text DEFAULT 'auto',
    overfetch_factor integer DEFAULT 10
) RETURNS TABLE (vector_id text, similarity_score double precision, distance double precision, metadata jsonb,
                 hybrid_score double precision)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx s3vl.indexes := s3vl._resolve(index_name);
    result jsonb;
BEGIN
    IF idx.embedding_model IS NULL OR idx.dimension IS NULL THEN
        PERFORM s3vl._raise('no_embedding_model',
            format('index %s has no embedding model registered, so text cannot be embedded for it',
                   coalesce(quote_literal(idx.name), idx.index_arn)));
    END IF;
    IF query_text IS NULL OR btrim(query_text) = '' THEN
        PERFORM s3vl._raise('invalid_argument', 'query_text must not be empty');
    END IF;
    PERFORM s3vl._check_top_k(top_k);
    PERFORM s3vl._check_filter(metadata_filter);
    result := s3vl._invoke('query_text', jsonb_strip_nulls(jsonb_build_object(
        'index_arn', idx.index_arn,
        'query_text', query_text,
        'embedding_model', idx.embedding_model,
        'dimension', idx.dimension,
        'text_keys', to_jsonb(idx.searchable_keys),
        'hybrid', hybrid,
        'top_k', top_k,
        'return_metadata', return_metadata,
        'metadata_filter', metadata_filter)) || s3vl._prefilter(source_ids, prefilter, overfetch_factor));
    RETURN QUERY SELECT r.vector_id, r.similarity_score, r.distance, r.metadata, r.score
                 FROM s3vl._query_rows(result, coalesce(return_metadata, true)) AS r;
END
$$;

-- similar_to's parameter vector_id and its result column vector_id share a name, which only a
-- LANGUAGE sql function allows; it wraps the PL/pgSQL implementation.
CREATE OR REPLACE FUNCTION s3vl._similar_to(
    index_name text, key text, top_k integer, metadata_filter jsonb, return_metadata boolean, include_self boolean
) RETURNS TABLE (vector_id text, similarity_score double precision, distance double precision, metadata jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx s3vl.indexes := s3vl._resolve(index_name);
    result jsonb;
BEGIN
    IF key IS NULL OR key = '' THEN
        PERFORM s3vl._raise('invalid_argument', 'vector_id must not be empty');
    END IF;
    PERFORM s3vl._check_top_k(top_k);
    PERFORM s3vl._check_filter(metadata_filter);
    result := s3vl._invoke('similar_to', jsonb_strip_nulls(jsonb_build_object(
        'index_arn', idx.index_arn, 'vector_id', key, 'top_k', top_k, 'metadata_filter', metadata_filter,
        'return_metadata', return_metadata, 'include_self', include_self)));
    RETURN QUERY SELECT r.vector_id, r.similarity_score, r.distance, r.metadata
                 FROM s3vl._query_rows(result, coalesce(return_metadata, true)) AS r;
END
$$;

CREATE OR REPLACE FUNCTION s3vl.similar_to(
    index_name text,
    vector_id text,
    top_k integer DEFAULT 10,
    metadata_filter jsonb DEFAULT NULL,
    return_metadata boolean DEFAULT true,
    include_self boolean DEFAULT false
) RETURNS TABLE (vector_id text, similarity_score double precision, distance double precision, metadata jsonb)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM s3vl._similar_to($1, $2, $3, $4, $5, $6) $$;

CREATE OR REPLACE FUNCTION s3vl.get_vectors(
    vector_ids text[],
    index_name text DEFAULT NULL,
    index_arn text DEFAULT NULL,
    include_vector_data boolean DEFAULT true,
    include_metadata boolean DEFAULT true
) RETURNS TABLE (vector_id text, embedding real[], metadata jsonb, found boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx s3vl.indexes := s3vl._resolve(index_name, index_arn);
    result jsonb;
BEGIN
    IF vector_ids IS NULL OR cardinality(vector_ids) = 0 THEN
        PERFORM s3vl._raise('invalid_argument', 'vector_ids must be a non-empty array of keys');
    END IF;
    PERFORM s3vl._check_list(vector_ids, 'vector_ids');
    IF cardinality(vector_ids) > 1000 THEN
        PERFORM s3vl._raise('invalid_argument', format('vector_ids has %s keys; at most 1000 per call', cardinality(vector_ids)));
    END IF;
    IF array_position(vector_ids, NULL) IS NOT NULL THEN
        PERFORM s3vl._raise('invalid_argument', 'vector_ids must not contain NULL');
    END IF;
    result := s3vl._invoke('get_vectors', jsonb_build_object(
        'index_arn', idx.index_arn, 'vector_ids', to_jsonb(vector_ids),
        'return_data', coalesce(include_vector_data, true), 'return_metadata', coalesce(include_metadata, true)));
    RETURN QUERY
        SELECT v ->> 'key',
               CASE WHEN jsonb_typeof(v -> 'data') = 'array'
                    THEN ARRAY(SELECT x::real FROM jsonb_array_elements_text(v -> 'data') AS x) END,
               CASE WHEN coalesce(include_metadata, true) AND (v ->> 'found')::boolean
                    THEN coalesce(nullif(v -> 'metadata', 'null'::jsonb), '{}'::jsonb) END,
               (v ->> 'found')::boolean
        FROM jsonb_array_elements(result -> 'vectors') WITH ORDINALITY AS t(v, n)
        ORDER BY n;
END
$$;

-- One page of the index's vectors. Pass response_next_token back as next_token for the next
-- page; it is NULL on the last page. (Every row of a page carries the same token.)
CREATE OR REPLACE FUNCTION s3vl.list_vectors(
    index_name text DEFAULT NULL,
    index_arn text DEFAULT NULL,
    max_results integer DEFAULT 100,
    next_token text DEFAULT NULL,
    return_data boolean DEFAULT false,
    return_metadata boolean DEFAULT true,
    segment_count integer DEFAULT NULL,
    segment_index integer DEFAULT NULL
) RETURNS TABLE (vector_id text, vector_data real[], metadata jsonb, response_next_token text, total_count integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx s3vl.indexes := s3vl._resolve(index_name, index_arn);
    result jsonb;
BEGIN
    IF max_results IS NULL OR max_results NOT BETWEEN 1 AND 1000 THEN
        PERFORM s3vl._raise('invalid_argument', format('max_results must be between 1 and 1000, got %s', coalesce(max_results::text, 'NULL')));
    END IF;
    result := s3vl._invoke('list_vectors', jsonb_strip_nulls(jsonb_build_object(
        'index_arn', idx.index_arn, 'max_results', max_results, 'next_token', nullif(next_token, ''),
        'return_data', coalesce(return_data, false), 'return_metadata', coalesce(return_metadata, true),
        'segment_count', segment_count, 'segment_index', segment_index)));
    RETURN QUERY
        SELECT v ->> 'key',
               CASE WHEN jsonb_typeof(v -> 'data') = 'array'
                    THEN ARRAY(SELECT x::real FROM jsonb_array_elements_text(v -> 'data') AS x) END,
               CASE WHEN coalesce(return_metadata, true) THEN coalesce(nullif(v -> 'metadata', 'null'::jsonb), '{}'::jsonb) END,
               result ->> 'next_token',
               jsonb_array_length(result -> 'vectors')
        FROM jsonb_array_elements(result -> 'vectors') WITH ORDINALITY AS t(v, n)
        ORDER BY n;
END
$$;

COMMENT ON FUNCTION s3vl.query_vectors(double precision[], text, text, integer, boolean, jsonb, text[], text, integer) IS
    'Nearest vectors to query_vector (QueryVectors, pages followed up to top_k <= 10000). similarity_score = 1 - cosine distance. '
    'source_ids restricts to vectors whose s3vl_id is listed ($in filter, or over-fetch and re-rank).';
COMMENT ON FUNCTION s3vl.query_text(text, text, integer, jsonb, boolean, boolean, text[], text, integer) IS
    'Embed query_text with the index''s registered Bedrock model, then query; hybrid (full-text + vector, RRF) where the index has searchable keys.';
COMMENT ON FUNCTION s3vl.similar_to(text, text, integer, jsonb, boolean, boolean) IS 'Nearest neighbours of a stored vector (itself excluded unless include_self).';
COMMENT ON FUNCTION s3vl.get_vectors(text[], text, text, boolean, boolean) IS 'Vectors by key, in input order; found = false for missing keys.';
COMMENT ON FUNCTION s3vl.list_vectors(text, text, integer, text, boolean, boolean, integer, integer) IS
    'One page of vectors; pass response_next_token back as next_token for the next page (NULL on the last).';
