-- The SQL a sync is made of: the models it may use, and the builders that turn its definition
-- into SQL text (key, text, hash, metadata, key parsing, enqueueing), shared by the generated
-- functions (210), capture (220), definitions (230), the queue (240) and reconcile (310).
-- Tables: sql/incremental/2xx-sync*.sql. Contract: docs/internals.md.
--
-- These builders only return text; nothing here evaluates a sync's expressions. Identifiers go
-- through format('%I') and values through format('%L'); every function pins search_path.

-- The sync -> index registry reference, once the registry table exists (it is the query
-- interface's, sql/incremental/100-*.sql).
DO $$
BEGIN
    IF to_regclass('s3vl.indexes') IS NOT NULL AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_constraint WHERE conname = 'syncs_index_name_fkey' AND conrelid = 's3vl.syncs'::regclass) THEN
        ALTER TABLE s3vl.syncs ADD CONSTRAINT syncs_index_name_fkey
            FOREIGN KEY (index_name) REFERENCES s3vl.indexes (name) ON UPDATE CASCADE;
    END IF;
END
$$;

-- === models ================================================================================
-- Embedding models a sync may use, with the dimensions each accepts and its input limit.
CREATE OR REPLACE FUNCTION s3vl.embedding_models()
RETURNS TABLE (model text, dimensions int[], max_batch int, max_chars int)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('amazon.titan-embed-text-v2:0', ARRAY[256, 512, 1024], 1, 50000),
           ('amazon.titan-embed-text-v1', ARRAY[1536], 1, 50000),
           ('cohere.embed-english-v3', ARRAY[1024], 96, 2048),
           ('cohere.embed-multilingual-v3', ARRAY[1024], 96, 2048),
           ('cohere.embed-v4:0', ARRAY[256, 512, 1024, 1536], 96, 128000),
           ('amazon.nova-2-multimodal-embeddings-v1:0', ARRAY[256, 384, 1024, 3072], 1, 50000)
$$;
COMMENT ON FUNCTION s3vl.embedding_models() IS 'Bedrock embedding models a sync may use (dimensions, batch size, input limit).';

-- The row of a model id, or of a cross-region inference profile id (us./eu./apac./.../global.
-- before the model id: the profile serves that model); no row for an unknown model.
CREATE OR REPLACE FUNCTION s3vl.embedding_model(model_id text)
RETURNS TABLE (model text, dimensions int[], max_batch int, max_chars int)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT em.model, em.dimensions, em.max_batch, em.max_chars FROM s3vl.embedding_models() em
    WHERE em.model = regexp_replace(model_id, '^(us-gov|us|eu|apac|ca|jp|au|global)\.', '')
$$;
COMMENT ON FUNCTION s3vl.embedding_model(text) IS 'The embedding_models() row of a model id or of a cross-region inference profile id.';

-- === definitions ===========================================================================
CREATE OR REPLACE FUNCTION s3vl._sync(sync_name text)
RETURNS s3vl.syncs
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs;
BEGIN
    SELECT * INTO s FROM s3vl.syncs WHERE name = sync_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync "%" does not exist', sync_name
            USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM s3vl.syncs lists the syncs.';
    END IF;
    RETURN s;
END
$$;

-- The sync, and an error naming its source when that table no longer exists (a dropped table's
-- regclass is a bare number, which no query can use).
CREATE OR REPLACE FUNCTION s3vl._live_sync(sync_name text)
RETURNS s3vl.syncs
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._sync(sync_name);
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = s.source) THEN
        RAISE EXCEPTION 'the source table % of sync "%" no longer exists', s.source_name, s.name
            USING ERRCODE = 'undefined_table',
                  HINT = format('Drop the sync (SELECT s3vl.drop_sync(%L)), or recreate the table and the sync.', s.name);
    END IF;
    RETURN s;
END
$$;

-- === types that s3vl's privileged code may touch ===========================================
-- A type whose every operation is PostgreSQL's own code: a base type (or an array of one) of
-- pg_catalog created with the database (oid below FirstNormalObjectId). Code that runs with s3vl's
-- privileges (the capture triggers, the worker, reconcile) casts and compares key columns, so key
-- columns must be of such types: a user's type, domain, enum or composite brings casts, operators,
-- input functions or CHECK constraints that its owner controls, and they would run as s3vl.
CREATE OR REPLACE FUNCTION s3vl._builtin_type(typ oid)
RETURNS boolean
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((
        SELECT t.oid < 16384 AND t.typnamespace = 'pg_catalog'::regnamespace AND t.typtype = 'b'
               AND (t.typelem = 0 OR (SELECT e.oid < 16384 AND e.typtype = 'b' FROM pg_catalog.pg_type e WHERE e.oid = t.typelem))
        FROM pg_catalog.pg_type t WHERE t.oid = typ), false)
$$;

-- Per column: are equal values of its type always the same bytes (so IS DISTINCT FROM tells a
-- change exactly as the text the sync renders would)? Integers, booleans, dates and times, uuid,
-- oid, and text/varchar under a deterministic collation. Not numeric (1.0 = 1.00), floats
-- (0 = -0), jsonb (semantic equality), json (no equality): those are compared by binary image.
CREATE OR REPLACE FUNCTION s3vl._column_safety(source regclass, columns text[])
RETURNS TABLE (attname text, safe boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT att.attname::text,
           att.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'bool'::regtype, 'date'::regtype,
                            'timestamp'::regtype, 'timestamptz'::regtype, 'uuid'::regtype, 'oid'::regtype)
           OR (att.atttypid IN ('text'::regtype, 'varchar'::regtype)
               AND coalesce((SELECT co.collisdeterministic FROM pg_catalog.pg_collation co
                             WHERE co.oid = att.attcollation), false))
    FROM unnest(columns) AS c
    JOIN pg_catalog.pg_attribute att ON att.attrelid = source AND att.attname = c
$$;

-- === SQL-expression builders (shared with reconcile) ========================================
-- A key part as text, escaped so that parts joined by '/' are unambiguous ('%' -> %25, '/' -> %2F).
CREATE OR REPLACE FUNCTION s3vl._key_sql(key_columns text[], alias text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN cardinality(key_columns) = 1
        THEN format('(%I.%I)::text', alias, key_columns[1])
        ELSE (SELECT string_agg(
                  format($f$pg_catalog.replace(pg_catalog.replace((%I.%I)::text, '%%', '%%25'), '/', '%%2F')$f$, alias, c),
                  $s$ OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) $s$ ORDER BY i)
              FROM unnest(key_columns) WITH ORDINALITY AS u(c, i))
    END
$$;

-- The vector key (= s3vl_id) of a source row, as an SQL expression over `alias`.
-- Single-column key: the value's text form. Composite key: each part's text form with '%' and
-- '/' percent-escaped, joined by '/'. With chunking, vector keys are <key>#<n>.
CREATE OR REPLACE FUNCTION s3vl.sync_key_sql(sync_name text, alias text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT s3vl._key_sql((s3vl._sync(sync_name)).key_columns, alias) $$;
COMMENT ON FUNCTION s3vl.sync_key_sql(text, text) IS 'SQL expression of the vector key (s3vl_id) of a source row aliased `alias`.';

-- The rendered text of a source row (before chunking), as an SQL expression over `alias`.
-- The sub-select scopes the sync's unqualified column names to that one row.
CREATE OR REPLACE FUNCTION s3vl._text_sql(text_expression text, alias text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('(SELECT (%s)::text FROM (SELECT %I.*) AS s3vl_row)', text_expression, alias) $$;

CREATE OR REPLACE FUNCTION s3vl.sync_text_sql(sync_name text, alias text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT s3vl._text_sql((s3vl._sync(sync_name)).text_expression, alias) $$;
COMMENT ON FUNCTION s3vl.sync_text_sql(text, text) IS 'SQL expression of the text a source row aliased `alias` is embedded from.';

-- The content hash (= s3vl_hash): hex SHA-256 of the rendered text, first 32 hex digits.
CREATE OR REPLACE FUNCTION s3vl._hash_of_sql(text_sql text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format($f$pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(%s, 'UTF8')), 'hex'), 32)$f$, text_sql) $$;

CREATE OR REPLACE FUNCTION s3vl.sync_hash_sql(sync_name text, alias text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT s3vl._hash_of_sql(s3vl.sync_text_sql(sync_name, alias)) $$;
COMMENT ON FUNCTION s3vl.sync_hash_sql(text, text) IS 'SQL expression of the content hash (s3vl_hash) of a source row aliased `alias`.';

-- A number as S3 Vectors stores metadata numbers (a double), or an error naming the column when it
-- has none (NaN, infinity, beyond a double's range): S3 Vectors refuses such values, and they would
-- otherwise reach it as the strings 'NaN' / 'Infinity'. The row then fails alone with this message.
CREATE OR REPLACE FUNCTION s3vl._finite(x double precision, what text)
RETURNS double precision
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF x IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) THEN
        RAISE EXCEPTION 'metadata column "%" is %: S3 Vectors metadata numbers must be finite', what, x
            USING ERRCODE = 'numeric_value_out_of_range',
                  HINT = 'Leave the column out of metadata_columns, or store NULL instead of NaN or infinity.';
    END IF;
    RETURN x;
END
$$;

CREATE OR REPLACE FUNCTION s3vl._finite(x numeric, what text)
RETURNS double precision
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF x IS NOT NULL AND x NOT IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric)
       AND abs(x) > 1.7976931348623157e308 THEN
        RAISE EXCEPTION 'metadata column "%" is a number beyond a double''s range (about 1.8e308): S3 Vectors metadata numbers are doubles', what
            USING ERRCODE = 'numeric_value_out_of_range',
                  HINT = 'Leave the column out of metadata_columns, or cap its values.';
    END IF;
    RETURN s3vl._finite(x::double precision, what);
END
$$;

CREATE OR REPLACE FUNCTION s3vl._finite_array(x double precision[], what text)
RETURNS double precision[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN x IS NULL THEN NULL ELSE ARRAY(SELECT s3vl._finite(e, what) FROM unnest(x) AS e) END $$;

CREATE OR REPLACE FUNCTION s3vl._finite_array(x numeric[], what text)
RETURNS double precision[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN x IS NULL THEN NULL ELSE ARRAY(SELECT s3vl._finite(e, what) FROM unnest(x) AS e) END $$;

-- One metadata value as SQL over `alias`: numbers as finite doubles, timestamps and dates as
-- epoch seconds, the rest as is.
CREATE OR REPLACE FUNCTION s3vl._metadata_value_sql(typ regtype, col text, alias text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN typ IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
            THEN format('s3vl._finite(pg_catalog.date_part(''epoch'', %I.%I), %L)', alias, col, col)
        WHEN typ = 'numeric'::regtype
            THEN format('s3vl._finite(%I.%I, %L)', alias, col, col)
        WHEN typ IN ('float4'::regtype, 'float8'::regtype)
            THEN format('s3vl._finite((%I.%I)::pg_catalog.float8, %L)', alias, col, col)
        WHEN typ = 'numeric[]'::regtype
            THEN format('s3vl._finite_array(%I.%I, %L)', alias, col, col)
        WHEN typ IN ('float4[]'::regtype, 'float8[]'::regtype)
            THEN format('s3vl._finite_array((%I.%I)::pg_catalog.float8[], %L)', alias, col, col)
        ELSE format('%I.%I', alias, col) END
$$;

-- The declared metadata of a row as jsonb (NULLs dropped).
CREATE OR REPLACE FUNCTION s3vl._metadata_sql(source regclass, metadata_columns text[], alias text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN cardinality(metadata_columns) = 0 THEN $e$'{}'::pg_catalog.jsonb$e$
    ELSE 'pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(' || (
        SELECT string_agg(format('%L, ', c) || s3vl._metadata_value_sql(a.atttypid::regtype, c, alias), ', ' ORDER BY i)
        FROM unnest(metadata_columns) WITH ORDINALITY AS u(c, i)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = source AND a.attname = c
    ) || '))' END
$$;

CREATE OR REPLACE FUNCTION s3vl.sync_metadata_sql(sync_name text, alias text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s3vl._metadata_sql(s.source, s.metadata_columns, alias) FROM s3vl._sync(sync_name) AS s
$$;
COMMENT ON FUNCTION s3vl.sync_metadata_sql(text, text) IS 'SQL expression (jsonb) of the declared metadata of a source row aliased `alias`.';

-- The key columns' values parsed back from a key text held in `key_sql` (the inverse of
-- sync_key_sql), as a comma-separated list of casts to the columns' (built-in) types.
CREATE OR REPLACE FUNCTION s3vl._key_parse_sql(source regclass, key_columns text[], key_sql text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(CASE WHEN cardinality(key_columns) = 1
               THEN format('CAST(%s AS %s)', key_sql, format_type(a.atttypid, a.atttypmod))
               ELSE format($f$CAST(pg_catalog.replace(pg_catalog.replace(pg_catalog.split_part(%s, '/', %s), '%%2F', '/'), '%%25', '%%') AS %s)$f$,
                           key_sql, i, format_type(a.atttypid, a.atttypmod)) END, ', ' ORDER BY i)
    FROM unnest(key_columns) WITH ORDINALITY AS u(c, i)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = source AND a.attname = c
$$;

-- A join condition matching `alias`'s key columns against a key text held in `key_sql`, so that
-- loading rows by key uses the primary key index.
CREATE OR REPLACE FUNCTION s3vl._key_match_sql(source regclass, key_columns text[], alias text, key_sql text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('(%s) OPERATOR(pg_catalog.=) (%s)',
                  (SELECT string_agg(format('%I.%I', alias, c), ', ' ORDER BY i)
                   FROM unnest(key_columns) WITH ORDINALITY AS u(c, i)),
                  s3vl._key_parse_sql(source, key_columns, key_sql))
$$;

-- The source as a FROM item: ONLY for a plain table (its inheritance children are other tables),
-- the whole tree for a partitioned one (its rows live in its partitions).
CREATE OR REPLACE FUNCTION s3vl._source_sql(source regclass)
RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN c.relkind = 'p' THEN '' ELSE 'ONLY ' END || source::text
    FROM pg_catalog.pg_class c WHERE c.oid = source
$$;

-- === enqueue (coalescing, version bump) ====================================================
-- Insert keys into the outbox; a key already there gets its version bumped (and a failed key
-- goes back to pending with its attempts reset, since the row changed). Sorted, so that two
-- concurrent enqueuers lock outbox rows in the same order, the order s3vl.complete locks them
-- in too: COLLATE "C" (byte order: the cheapest sort, and the same under every database locale).
-- The INSERT that enqueues the keys a query returns (one text column).
CREATE OR REPLACE FUNCTION s3vl._enqueue_sql(sync_name text, keys_query text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format(
        'INSERT INTO s3vl.outbox AS o (sync_name, key) '
        'SELECT DISTINCT %L, q.k COLLATE "C" FROM (%s) AS q(k) WHERE q.k IS NOT NULL ORDER BY 2 '
        'ON CONFLICT (sync_name, key) DO UPDATE SET '
        '  version = o.version + 1, '
        '  enqueued_at = CASE WHEN o.status = ''failed'' THEN now() ELSE o.enqueued_at END, '
        '  status = ''pending'', attempts = 0, last_error = NULL',
        sync_name, keys_query)
$$;

-- The same for a query that cannot return a key twice (no DISTINCT): for the capture of a
-- table whose key is an immediate unique key of types whose values have one text form each.
CREATE OR REPLACE FUNCTION s3vl._enqueue_unique_sql(sync_name text, keys_query text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format(
        'INSERT INTO s3vl.outbox AS o (sync_name, key) '
        'SELECT %L, q.k FROM (%s) AS q(k) WHERE q.k IS NOT NULL ORDER BY q.k COLLATE "C" '
        'ON CONFLICT (sync_name, key) DO UPDATE SET '
        '  version = o.version + 1, '
        '  enqueued_at = CASE WHEN o.status = ''failed'' THEN now() ELSE o.enqueued_at END, '
        '  status = ''pending'', attempts = 0, last_error = NULL',
        sync_name, keys_query)
$$;

CREATE OR REPLACE FUNCTION s3vl._enqueue_select(sync_name text, keys_query text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE s3vl._enqueue_sql(sync_name, keys_query);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- The outbox has no foreign key to s3vl.syncs (sql/incremental/202: the per-row check was most
-- of a bulk write's capture cost): a sync's deletion or rename cascades to its outbox rows here.
CREATE OR REPLACE FUNCTION s3vl._syncs_cascade()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM s3vl.outbox o WHERE o.sync_name = OLD.name;
    ELSIF NEW.name IS DISTINCT FROM OLD.name THEN
        UPDATE s3vl.outbox o SET sync_name = NEW.name WHERE o.sync_name = OLD.name;
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER syncs_cascade AFTER DELETE OR UPDATE OF name ON s3vl.syncs
    FOR EACH ROW EXECUTE FUNCTION s3vl._syncs_cascade();

-- The logical replication slot (wal2json) feeding capture => 'logical' syncs: one per database.
CREATE OR REPLACE FUNCTION s3vl.capture_slot_name()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 's3vl_capture_' || oid FROM pg_catalog.pg_database WHERE datname = current_database() $$;
COMMENT ON FUNCTION s3vl.capture_slot_name() IS 'The logical replication slot (wal2json) feeding capture => ''logical'' syncs.';
