-- The sync worker's functions: sync definitions (create/alter/drop), trigger capture into the
-- outbox, the outbox protocol the worker calls by name (lease / complete / fail / release /
-- retry_failed), the SQL-expression helpers reconcile shares (key, text, hash, metadata), and
-- the s3vl.sync_status view. Tables: sql/incremental/200-sync.sql. Contract: notes/sync-contract.md.
--
-- Every function pins search_path; user-supplied identifiers go through format('%I'), and a
-- sync's text expression is evaluated with the source table as its only FROM item, so its
-- unqualified column names resolve to the source's columns (functions outside pg_catalog must
-- be schema-qualified in it, because of the pinned search_path).

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
           ('cohere.embed-multilingual-v3', ARRAY[1024], 96, 2048)
$$;
COMMENT ON FUNCTION s3vl.embedding_models() IS 'Bedrock embedding models a sync may use (dimensions, batch size, input limit).';

-- === SQL-expression helpers (shared with reconcile) ========================================
-- A key part as text, escaped so that parts joined by '/' are unambiguous ('%' -> %25, '/' -> %2F).
CREATE OR REPLACE FUNCTION s3vl._key_sql(key_columns text[], alias text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN cardinality(key_columns) = 1
        THEN format('(%I.%I)::text', alias, key_columns[1])
        ELSE (SELECT string_agg(
                  format($f$replace(replace((%I.%I)::text, '%%', '%%25'), '/', '%%2F')$f$, alias, c),
                  $s$ || '/' || $s$ ORDER BY i)
              FROM unnest(key_columns) WITH ORDINALITY AS u(c, i))
    END
$$;

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
CREATE OR REPLACE FUNCTION s3vl.sync_text_sql(sync_name text, alias text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('(SELECT (%s)::text FROM (SELECT %I.*) AS s3vl_row)',
                  (s3vl._sync(sync_name)).text_expression, alias)
$$;
COMMENT ON FUNCTION s3vl.sync_text_sql(text, text) IS 'SQL expression of the text a source row aliased `alias` is embedded from.';

-- The content hash (= s3vl_hash): hex SHA-256 of the rendered text, first 32 hex digits.
CREATE OR REPLACE FUNCTION s3vl._hash_of_sql(text_sql text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format($f$left(encode(pg_catalog.sha256(convert_to(%s, 'UTF8')), 'hex'), 32)$f$, text_sql) $$;

CREATE OR REPLACE FUNCTION s3vl.sync_hash_sql(sync_name text, alias text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT s3vl._hash_of_sql(s3vl.sync_text_sql(sync_name, alias)) $$;
COMMENT ON FUNCTION s3vl.sync_hash_sql(text, text) IS 'SQL expression of the content hash (s3vl_hash) of a source row aliased `alias`.';

-- The declared metadata of a row as jsonb (NULLs dropped; timestamps/dates as epoch seconds).
CREATE OR REPLACE FUNCTION s3vl._metadata_sql(source regclass, metadata_columns text[], alias text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN cardinality(metadata_columns) = 0 THEN $e$'{}'::jsonb$e$
    ELSE 'jsonb_strip_nulls(jsonb_build_object(' || (
        SELECT string_agg(format('%L, ', c) || CASE
                   WHEN a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
                       THEN format('extract(epoch FROM %I.%I)', alias, c)
                   ELSE format('%I.%I', alias, c) END, ', ' ORDER BY i)
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
-- sync_key_sql), as a comma-separated list of casts to the columns' types.
CREATE OR REPLACE FUNCTION s3vl._key_parse_sql(source regclass, key_columns text[], key_sql text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(CASE WHEN cardinality(key_columns) = 1
               THEN format('CAST(%s AS %s)', key_sql, format_type(a.atttypid, a.atttypmod))
               ELSE format($f$CAST(replace(replace(split_part(%s, '/', %s), '%%2F', '/'), '%%25', '%%') AS %s)$f$,
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
    SELECT format('(%s) = (%s)',
                  (SELECT string_agg(format('%I.%I', alias, c), ', ' ORDER BY i)
                   FROM unnest(key_columns) WITH ORDINALITY AS u(c, i)),
                  s3vl._key_parse_sql(source, key_columns, key_sql))
$$;

-- === loading rows (the worker's one query per batch) =======================================
-- The current rows of `keys`: rendered text, metadata, content hash. A key whose row is gone
-- is absent from the result (the worker turns it into a delete).
CREATE OR REPLACE FUNCTION s3vl.load_rows(sync_name text, keys text[])
RETURNS TABLE (key text, content text, metadata jsonb, content_hash text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._sync(sync_name);
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT k.s3vl_k, s3vl_r.s3vl_text, %s, %s '
        'FROM unnest($1) AS k(s3vl_k) '
        'JOIN ONLY %s AS t ON %s '
        'CROSS JOIN LATERAL (SELECT (%s)::text AS s3vl_text) AS s3vl_r',
        s3vl._metadata_sql(s.source, s.metadata_columns, 't'),
        s3vl._hash_of_sql('s3vl_r.s3vl_text'),
        s.source,
        s3vl._key_match_sql(s.source, s.key_columns, 't', 'k.s3vl_k'),
        s.text_expression)
    USING keys;
END
$$;
COMMENT ON FUNCTION s3vl.load_rows(text, text[]) IS 'Current text, metadata and content hash of the rows with these keys (missing = deleted).';

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

CREATE OR REPLACE FUNCTION s3vl.enqueue(sync_name text, keys text[])
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._sync(sync_name);
    bad text;
BEGIN
    -- a key that cannot be parsed into the key columns' types would fail every batch it is in
    BEGIN
        EXECUTE format('SELECT array_agg(ROW(%s)::text) FROM unnest($1) AS k(s3vl_k)',
                       s3vl._key_parse_sql(s.source, s.key_columns, 'k.s3vl_k'))
        USING keys;
    EXCEPTION WHEN data_exception THEN
        GET STACKED DIAGNOSTICS bad = MESSAGE_TEXT;
        RAISE EXCEPTION 'enqueue: a key does not match the key columns of sync "%": %', sync_name, bad
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Keys are the s3vl_id form: the value as text; composite keys are parts joined by ''/''.';
    END;
    RETURN s3vl._enqueue_select(sync_name, format('SELECT unnest(%L::text[])', keys));
END
$$;
COMMENT ON FUNCTION s3vl.enqueue(text, text[]) IS 'Queue keys of a sync for re-sync (coalesces; bumps the version of queued keys).';

-- Every key of the sync: each source row, each key the index holds (so deleted rows go), and
-- each key already queued (its version moves on: a batch in flight, loaded before a TRUNCATE
-- or under an older definition, is requeued instead of completed, and its vectors not kept).
CREATE OR REPLACE FUNCTION s3vl.resync(sync_name text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._sync(sync_name);
BEGIN
    RETURN s3vl._enqueue_select(sync_name, format(
        'SELECT %1$s FROM ONLY %2$s AS t UNION SELECT st.key FROM s3vl.sync_state st WHERE st.sync_name = %3$L '
        'UNION SELECT o.key FROM s3vl.outbox o WHERE o.sync_name = %3$L',
        s3vl._key_sql(s.key_columns, 't'), s.source, sync_name));
END
$$;
COMMENT ON FUNCTION s3vl.resync(text) IS 'Queue every key of a sync (backfill / full resync); returns the number queued.';

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

-- === trigger capture =======================================================================
-- One statement-level trigger per operation and sync, with transition tables, all calling the
-- sync's own generated function s3vl._capture_sync_<sync>() (s3vl._capture_function_sql). Its SQL
-- is static (keys, read columns and sync name are spelled out at generation time), so each
-- writer session plans it once and every statement after that only runs it: no catalog look-up,
-- no string building, no dynamic EXECUTE per statement.
-- An UPDATE enqueues only keys whose read columns (keys, metadata, the text expression's
-- columns) changed, compared by binary image (`*=`: works for every type, and equal images
-- render the same text); a changed key enqueues the old key and the new one. TRUNCATE resyncs.
-- SECURITY DEFINER so that writers to the source table need no privilege on s3vl; it only ever
-- evaluates key casts to text, never the sync's text expression.
-- The function is regenerated when the sync's read columns may change (create_sync,
-- alter_sync, every install-sql) and dropped by drop_sync.
CREATE OR REPLACE FUNCTION s3vl._capture_function_name(sync_name text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '_capture_sync_' || sync_name $$;  -- no other s3vl function starts so

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

CREATE OR REPLACE FUNCTION s3vl._capture_function_sql(s s3vl.syncs)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $gen$
DECLARE
    k text := s3vl._key_sql(s.key_columns, 't');
    -- once per statement (an InitPlan), not per row: a sync deleted without drop_sync
    -- (DELETE FROM s3vl.syncs) leaves triggers that must queue nothing
    live text := format('EXISTS (SELECT FROM s3vl.syncs WHERE name = %L)', s.name);
    changed_keys text;
    differs text;
    all_keys_safe boolean;
    unique_keys boolean := false;
BEGIN
    -- "a read column changed": IS DISTINCT FROM for columns of safe types (s3vl._column_safety),
    -- binary images (record_image_eq) for the others
    SELECT concat_ws(' OR ',
               string_agg(format('n.%1$I IS DISTINCT FROM o.%1$I', a.attname), ' OR ' ORDER BY a.attname)
                   FILTER (WHERE a.safe),
               'NOT pg_catalog.record_image_eq(ROW(' || string_agg(format('n.%I', a.attname), ', ' ORDER BY a.attname)
                   FILTER (WHERE NOT a.safe) || '), ROW('
                   || string_agg(format('o.%I', a.attname), ', ' ORDER BY a.attname) FILTER (WHERE NOT a.safe) || '))')
    INTO differs
    FROM s3vl._column_safety(s.source, s.read_columns) AS a;
    all_keys_safe := (SELECT bool_and(a.safe) FROM s3vl._column_safety(s.source, s.key_columns) AS a);
    -- the rows of one INSERT or DELETE cannot repeat a key: no DISTINCT (a sort+unique) needed
    IF all_keys_safe AND EXISTS (
        SELECT FROM pg_catalog.pg_index i
        WHERE i.indrelid = s.source AND i.indisunique AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL
          AND i.indnkeyatts = cardinality(s.key_columns)
          AND (SELECT array_agg(a.attname::text) FROM pg_catalog.pg_attribute a
               WHERE a.attrelid = s.source AND a.attnum = ANY (i.indkey[0:i.indnkeyatts - 1])) @> s.key_columns) THEN
        unique_keys := true;
    END IF;
    IF NOT EXISTS (
        SELECT FROM unnest(s.key_columns) AS c
        JOIN pg_catalog.pg_attribute a ON a.attrelid = s.source AND a.attname = c
        WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
                          WHERE am.amname = 'btree' AND oc.opcdefault AND oc.opcintype = a.atttypid)) THEN
        -- old and new rows paired by the key columns themselves (a join on their types); a
        -- changed pair enqueues both key texts, which differ only when the key changed. Keys of
        -- "safe" types (equal values, same text) are equal in a pair: one key text is enough.
        changed_keys := format(
            CASE WHEN all_keys_safe
                THEN 'SELECT coalesce(%2$s, %3$s) FROM s3vl_new AS n FULL JOIN s3vl_old AS o ON %1$s '
                ELSE 'SELECT x.k FROM s3vl_new AS n FULL JOIN s3vl_old AS o ON %1$s '
                     'CROSS JOIN LATERAL (VALUES (%2$s), (%3$s)) AS x(k) ' END
            || 'WHERE (%4$s) AND (n.%5$I IS NULL OR o.%5$I IS NULL OR %6$s)',
            (SELECT string_agg(format('n.%1$I = o.%1$I', c), ' AND ') FROM unnest(s.key_columns) AS c),
            s3vl._key_sql(s.key_columns, 'n'), s3vl._key_sql(s.key_columns, 'o'), live, s.key_columns[1], differs);
    ELSE
        -- a key type without a default btree operator class: pair the rows by key text
        changed_keys := format(
            'SELECT coalesce(n.k, o.k) FROM '
            '(SELECT %1$s AS k, ROW(%2$s) AS r FROM s3vl_new AS t) AS n '
            'FULL JOIN (SELECT %1$s AS k, ROW(%2$s) AS r FROM s3vl_old AS t) AS o ON n.k = o.k '
            'WHERE (%3$s) AND (n.k IS NULL OR o.k IS NULL OR NOT (n.r *= o.r))',
            k, (SELECT string_agg(format('t.%I', c), ', ' ORDER BY c) FROM unnest(s.read_columns) AS c), live);
    END IF;
    RETURN format($f$
CREATE OR REPLACE FUNCTION s3vl.%1$I()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET work_mem = '64MB'   -- a bulk statement's keys sorted and joined in memory (used only as needed)
AS $capture$
-- generated by s3vl._capture_function_sql for sync %2$s: do not edit (install-sql regenerates it)
BEGIN
    -- only the sync's own source may fire it: anyone able to attach it to another table could
    -- otherwise queue keys of their choosing into this sync (or a full resync, by TRUNCATE)
    IF TG_RELID <> %6$s::oid THEN
        RAISE EXCEPTION 's3vl capture function of sync %% fired on table %%, which is not its source',
            %2$L, TG_RELID::regclass USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'INSERT' THEN
        %3$s;
    ELSIF TG_OP = 'UPDATE' THEN
        %4$s;
    ELSIF TG_OP = 'DELETE' THEN
        %5$s;
    ELSIF EXISTS (SELECT FROM s3vl.syncs WHERE name = %2$L) THEN
        PERFORM s3vl.resync(%2$L);
    END IF;
    RETURN NULL;
END
$capture$$f$,
        s3vl._capture_function_name(s.name), s.name,
        CASE WHEN unique_keys THEN s3vl._enqueue_unique_sql(s.name, format('SELECT %s FROM s3vl_new AS t WHERE %s', k, live))
             ELSE s3vl._enqueue_sql(s.name, format('SELECT %s FROM s3vl_new AS t WHERE %s', k, live)) END,
        s3vl._enqueue_sql(s.name, changed_keys),
        CASE WHEN unique_keys THEN s3vl._enqueue_unique_sql(s.name, format('SELECT %s FROM s3vl_old AS t WHERE %s', k, live))
             ELSE s3vl._enqueue_sql(s.name, format('SELECT %s FROM s3vl_old AS t WHERE %s', k, live)) END,
        s.source::oid);
END
$gen$;

-- (Re)generate a sync's capture function. SECURITY DEFINER: the function belongs to the schema's
-- owner, whoever manages the sync; it is built from the stored, validated definition only.
CREATE OR REPLACE FUNCTION s3vl._install_capture(sync_name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._sync(sync_name);
BEGIN
    EXECUTE s3vl._capture_function_sql(s);
    -- EXECUTE is checked when a trigger is created, not when it fires: writers need none, and
    -- only those who manage syncs may attach the function to a table
    EXECUTE format('REVOKE ALL ON FUNCTION s3vl.%I() FROM PUBLIC', s3vl._capture_function_name(s.name));
    EXECUTE format('GRANT EXECUTE ON FUNCTION s3vl.%I() TO s3vl_admin', s3vl._capture_function_name(s.name));
END
$$;

CREATE OR REPLACE FUNCTION s3vl._drop_capture(sync_name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('DROP FUNCTION IF EXISTS s3vl.%I()', s3vl._capture_function_name(sync_name));
END
$$;

CREATE OR REPLACE FUNCTION s3vl._install_triggers(s s3vl.syncs)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text := s3vl._capture_function_name(s.name);
BEGIN
    PERFORM s3vl._install_capture(s.name);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS s3vl_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION s3vl.%I()', 's3vl_' || s.name || '_ins', s.source, fn);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS s3vl_old NEW TABLE AS s3vl_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION s3vl.%I()', 's3vl_' || s.name || '_upd', s.source, fn);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS s3vl_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION s3vl.%I()', 's3vl_' || s.name || '_del', s.source, fn);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION s3vl.%I()', 's3vl_' || s.name || '_trunc', s.source, fn);
END
$$;

CREATE OR REPLACE FUNCTION s3vl._drop_triggers(s s3vl.syncs)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    suffix text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid = s.source) THEN
        RETURN;  -- the source table is gone, and its triggers with it
    END IF;
    FOREACH suffix IN ARRAY ARRAY['ins', 'upd', 'del', 'trunc'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 's3vl_' || s.name || '_' || suffix, s.source);
    END LOOP;
END
$$;

-- === logical capture (wal2json) ===========================================================
-- One logical replication slot per database feeds the outbox for every sync with
-- capture => 'logical': no trigger runs in the writers' transactions. The worker polls it:
--   1. s3vl.capture_logical() peeks at the slot, turns each change into keys of the syncs on
--      that table (new key of an INSERT/UPDATE, old key of an UPDATE/DELETE; a TRUNCATE is a full
--      resync) and enqueues them, in the caller's transaction; it returns the LSN of the last
--      commit it covered;
--   2. after that transaction committed, s3vl.capture_consume(upto_lsn) consumes the slot up to it.
-- A crash between the two re-reads the same changes: keys are enqueued twice, which coalesces.
-- UPDATEs are enqueued whatever columns they touch (the old row image is not decoded); the
-- pipeline then finds unchanged rows unchanged and makes no AWS call for them.
CREATE OR REPLACE FUNCTION s3vl.capture_slot_name()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 's3vl_capture_' || oid FROM pg_catalog.pg_database WHERE datname = current_database() $$;
COMMENT ON FUNCTION s3vl.capture_slot_name() IS 'The logical replication slot (wal2json) feeding capture => ''logical'' syncs.';

CREATE OR REPLACE FUNCTION s3vl.capture_logical(max_changes int DEFAULT 10000,
                                                OUT changes int, OUT enqueued bigint, OUT upto_lsn pg_lsn)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs;
    nsp text;
    rel text;
    tables text;
    -- the row image of a change as a record of the source table (so keys are cast exactly as in SQL)
    row_of text := 'jsonb_populate_record(NULL::%2$s, (SELECT jsonb_object_agg(c->>''name'', c->''value'') '
                   'FROM jsonb_array_elements(ch.d->''@'') AS c))';
    n bigint;
BEGIN
    enqueued := 0;
    SELECT string_agg(DISTINCT replace(n2.nspname, '.', '\.') || '.' || replace(c2.relname, '.', '\.'), ',')
    INTO tables
    FROM s3vl.syncs x JOIN pg_catalog.pg_class c2 ON c2.oid = x.source
    JOIN pg_catalog.pg_namespace n2 ON n2.oid = c2.relnamespace
    WHERE x.capture = 'logical';
    IF tables IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = s3vl.capture_slot_name()) THEN
        changes := 0;
        RETURN;
    END IF;
    CREATE TEMPORARY TABLE IF NOT EXISTS s3vl_changes (lsn pg_lsn, d jsonb) ON COMMIT DROP;
    TRUNCATE s3vl_changes;
    INSERT INTO s3vl_changes
    SELECT lsn, data::jsonb FROM pg_catalog.pg_logical_slot_peek_changes(
        s3vl.capture_slot_name(), NULL, max_changes, 'format-version', '2', 'include-transaction', 'true',
        'add-tables', tables);
    SELECT count(*) FILTER (WHERE d->>'action' IN ('I', 'U', 'D', 'T')), max(lsn) FILTER (WHERE d->>'action' = 'C')
    INTO changes, upto_lsn FROM s3vl_changes;
    FOR s IN SELECT * FROM s3vl.syncs x WHERE x.capture = 'logical' ORDER BY x.name LOOP
        SELECT n2.nspname, c2.relname INTO nsp, rel
        FROM pg_catalog.pg_class c2 JOIN pg_catalog.pg_namespace n2 ON n2.oid = c2.relnamespace WHERE c2.oid = s.source;
        IF EXISTS (SELECT FROM s3vl_changes WHERE d->>'action' = 'T' AND d->>'schema' = nsp AND d->>'table' = rel) THEN
            enqueued := enqueued + s3vl.resync(s.name);
        END IF;
        n := s3vl._enqueue_select(s.name, format(
            'SELECT %1$s FROM s3vl_changes ch CROSS JOIN LATERAL ' || replace(row_of, '@', 'columns') || ' AS t '
            'WHERE ch.d->>''schema'' = %3$L AND ch.d->>''table'' = %4$L AND ch.d ? ''columns'' '
            'UNION SELECT %1$s FROM s3vl_changes ch CROSS JOIN LATERAL ' || replace(row_of, '@', 'identity') || ' AS t '
            'WHERE ch.d->>''schema'' = %3$L AND ch.d->>''table'' = %4$L AND ch.d ? ''identity''',
            s3vl._key_sql(s.key_columns, 't'), s.source, nsp, rel));
        enqueued := enqueued + n;
    END LOOP;
END
$$;
COMMENT ON FUNCTION s3vl.capture_logical(int) IS 'Enqueue the keys changed since the slot''s position (does not consume it: see s3vl.capture_consume).';

CREATE OR REPLACE FUNCTION s3vl.capture_consume(upto_lsn pg_lsn)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FROM pg_catalog.pg_logical_slot_get_changes(
        s3vl.capture_slot_name(), upto_lsn, NULL, 'format-version', '2', 'include-transaction', 'false')
$$;
COMMENT ON FUNCTION s3vl.capture_consume(pg_lsn) IS 'Consume the capture slot up to an LSN that s3vl.capture_logical covered (after its commit).';

-- === validation ============================================================================
-- Check a definition and fill in what is derived from it (read columns, embedding version).
-- Raises with a message naming the problem; returns the completed row.
CREATE OR REPLACE FUNCTION s3vl._validate_sync(s s3vl.syncs)
RETURNS s3vl.syncs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel record;
    c text;
    idx record;
    m record;
    pk text[];
    text_type regtype;
    expr_cols text[];
    view_name text := 's3vl_expr_check_' || pg_catalog.pg_backend_pid();
    probe refcursor;
    err text;
BEGIN
    IF s.name IS NULL OR s.name !~ '^[a-z_][a-z0-9_]{0,39}$' THEN
        RAISE EXCEPTION 'invalid sync name %: use 1-40 lowercase letters, digits or _, not starting with a digit',
            coalesce(quote_literal(s.name), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT cl.oid, cl.relkind INTO rel FROM pg_catalog.pg_class cl WHERE cl.oid = s.source;
    IF NOT FOUND OR rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'source % is not a table', s.source USING ERRCODE = 'wrong_object_type';
    END IF;

    -- key: the table's primary key unless given; every key column must exist
    SELECT array_agg(a.attname::text ORDER BY k.ord) INTO pk
    FROM pg_catalog.pg_constraint con
    CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
    WHERE con.conrelid = s.source AND con.contype = 'p';
    IF s.key_columns IS NULL OR cardinality(s.key_columns) = 0 THEN
        IF pk IS NULL THEN
            RAISE EXCEPTION 'source % has no primary key', s.source USING ERRCODE = 'invalid_table_definition',
                HINT = 'Add a primary key (composite keys are fine), or pass key_columns => ARRAY[...] naming unique, non-null columns.';
        END IF;
        s.key_columns := pk;
    END IF;
    FOREACH c IN ARRAY s.key_columns LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = s.source AND attname = c
                       AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'key column "%" does not exist in %', c, s.source USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    IF pk IS NULL OR NOT (s.key_columns @> pk AND pk @> s.key_columns) THEN
        IF NOT EXISTS (
            SELECT FROM pg_catalog.pg_index i
            WHERE i.indrelid = s.source AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
              AND (SELECT array_agg(a.attname::text) FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = s.source AND a.attnum = ANY (i.indkey)) @> s.key_columns
              AND s.key_columns @> (SELECT array_agg(a.attname::text) FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = s.source AND a.attnum = ANY (i.indkey))) THEN
            RAISE EXCEPTION 'key columns % are not the primary key (or a unique index) of %', s.key_columns, s.source
                USING ERRCODE = 'invalid_table_definition';
        END IF;
    END IF;

    -- metadata columns: exist, not reserved, within S3 Vectors' key count
    s.metadata_columns := coalesce(s.metadata_columns, '{}');
    IF cardinality(s.metadata_columns) > 40 THEN
        RAISE EXCEPTION 'too many metadata columns (%): at most 40', cardinality(s.metadata_columns)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH c IN ARRAY s.metadata_columns LOOP
        IF c LIKE 's3vl\_%' THEN
            RAISE EXCEPTION 'metadata column "%": the s3vl_ prefix is reserved', c USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = s.source AND attname = c
                       AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'metadata column "%" does not exist in %', c, s.source USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    IF (SELECT count(DISTINCT x) FROM unnest(s.metadata_columns) x) <> cardinality(s.metadata_columns) THEN
        RAISE EXCEPTION 'metadata columns % name a column twice', s.metadata_columns USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- text expression: parses over the source, is text, and which columns it reads
    -- (a temporary view gives both: its column type, and its dependencies on table columns)
    IF s.text_expression IS NULL OR btrim(s.text_expression) = '' THEN
        RAISE EXCEPTION 'text_expression is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        -- parsed as one query first (a cursor cannot hold two): nothing smuggled after a ';' ever
        -- runs; and in a WHERE clause, where aggregates, window and set-returning functions are refused
        OPEN probe FOR EXECUTE format('SELECT 1 FROM ONLY %s AS t WHERE (%s) IS NOT NULL LIMIT 0', s.source, s.text_expression);
        CLOSE probe;
        EXECUTE format('CREATE TEMPORARY VIEW %I AS SELECT (%s) AS e FROM ONLY %s AS t', view_name, s.text_expression, s.source);
    EXCEPTION WHEN invalid_cursor_definition THEN
        RAISE EXCEPTION 'text_expression must be one SQL expression over %', s.source
            USING ERRCODE = 'invalid_parameter_value';
    WHEN syntax_error OR undefined_column OR undefined_function OR datatype_mismatch
              OR undefined_table OR grouping_error OR feature_not_supported OR invalid_text_representation
              OR ambiguous_column OR wrong_object_type OR windowing_error THEN
        GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
        RAISE EXCEPTION 'text_expression % is not valid over %: %', quote_literal(s.text_expression), s.source, err
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Write an expression over the table''s columns, e.g. name || ''. '' || coalesce(description, ''''); qualify functions outside pg_catalog.';
    END;
    SELECT a.atttypid::regtype INTO text_type FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = ('pg_temp.' || quote_ident(view_name))::regclass AND a.attname = 'e';
    SELECT array_agg(DISTINCT a.attname::text) INTO expr_cols
    FROM pg_catalog.pg_rewrite r
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
    JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND (a.attnum = d.refobjsubid OR (d.refobjsubid = 0 AND a.attnum > 0))
    WHERE r.ev_class = ('pg_temp.' || quote_ident(view_name))::regclass
      AND d.refobjid = s.source AND NOT a.attisdropped;
    -- it may read only the source row: a change elsewhere would not be captured
    IF EXISTS (SELECT FROM pg_catalog.pg_rewrite r
               JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
               WHERE r.ev_class = ('pg_temp.' || quote_ident(view_name))::regclass
                 AND d.refclassid = 'pg_catalog.pg_class'::regclass
                 AND d.refobjid NOT IN (s.source, r.ev_class)) THEN
        EXECUTE format('DROP VIEW pg_temp.%I', view_name);
        RAISE EXCEPTION 'text_expression may read only the columns of % (it reads other tables)', s.source
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Changes to other tables are not captured: denormalise into the source table, or sync a view''s base table.';
    END IF;
    EXECUTE format('DROP VIEW pg_temp.%I', view_name);
    IF (SELECT t.typcategory FROM pg_catalog.pg_type t WHERE t.oid = text_type) <> 'S' THEN
        RAISE EXCEPTION 'text_expression must be of type text, not %', text_type
            USING ERRCODE = 'datatype_mismatch', HINT = 'Cast it: (' || s.text_expression || ')::text';
    END IF;
    s.read_columns := ARRAY(SELECT DISTINCT x FROM unnest(s.key_columns || s.metadata_columns || coalesce(expr_cols, '{}')) x ORDER BY 1);

    -- index and model: the index is registered, the model known, the dimensions agree
    IF to_regclass('s3vl.indexes') IS NULL THEN
        RAISE EXCEPTION 'the index registry s3vl.indexes is not installed' USING ERRCODE = 'undefined_table',
            HINT = 'Run s3vl install-sql.';
    END IF;
    EXECUTE 'SELECT * FROM s3vl.indexes i WHERE i.name = $1' INTO idx USING s.index_name;
    IF idx IS NULL THEN
        RAISE EXCEPTION 'index "%" is not registered', s.index_name USING ERRCODE = 'undefined_object',
            HINT = 'Register it first: SELECT s3vl.register_index(name, index_arn).';
    END IF;
    SELECT * INTO m FROM s3vl.embedding_models() em WHERE em.model = s.embedding_model;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown embedding model %', quote_literal(s.embedding_model) USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Known models: ' || (SELECT string_agg(model, ', ') FROM s3vl.embedding_models());
    END IF;
    s.dimensions := coalesce(s.dimensions, idx.dimension, m.dimensions[cardinality(m.dimensions)]);
    IF NOT s.dimensions = ANY (m.dimensions) THEN
        RAISE EXCEPTION 'model % does not produce % dimensions (it supports %)', s.embedding_model, s.dimensions, m.dimensions
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF idx.dimension IS NOT NULL AND idx.dimension <> s.dimensions THEN
        RAISE EXCEPTION 'dimensions % do not match index "%" (% dimensions)', s.dimensions, s.index_name, idx.dimension
            USING ERRCODE = 'invalid_parameter_value', HINT = 'An index''s dimension is fixed: create a new index for another model.';
    END IF;

    s.capture := coalesce(s.capture, 'trigger');
    IF s.capture = 'logical' THEN
        IF current_setting('wal_level') <> 'logical' THEN
            RAISE EXCEPTION 'capture => ''logical'' needs wal_level = logical (it is %)', current_setting('wal_level')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'On Aurora set rds.logical_replication = 1 in the cluster parameter group, or use capture => ''trigger''.';
        END IF;
        -- deletes and key changes carry the old key only through the replica identity
        IF NOT (pk IS NOT NULL AND s.key_columns @> pk AND pk @> s.key_columns)
           AND (SELECT relreplident FROM pg_catalog.pg_class WHERE oid = s.source) <> 'f' THEN
            RAISE EXCEPTION 'capture => ''logical'' with key columns other than the primary key needs REPLICA IDENTITY FULL on %', s.source
                USING ERRCODE = 'invalid_table_definition', HINT = format('ALTER TABLE %s REPLICA IDENTITY FULL', s.source);
        END IF;
    ELSIF s.capture <> 'trigger' THEN
        RAISE EXCEPTION 'capture must be ''trigger'' or ''logical'', not %', quote_literal(s.capture)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s.chunk_size IS NOT NULL AND (s.chunk_size < 100 OR s.chunk_size > m.max_chars) THEN
        RAISE EXCEPTION 'chunk_size % is out of range: 100 to % characters for %', s.chunk_size, m.max_chars, s.embedding_model
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    s.chunk_overlap := coalesce(s.chunk_overlap, 0);
    IF s.chunk_overlap < 0 OR (s.chunk_size IS NOT NULL AND s.chunk_overlap >= s.chunk_size / 2) THEN
        RAISE EXCEPTION 'chunk_overlap % must be >= 0 and less than half of chunk_size', s.chunk_overlap
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s.max_attempts IS NULL OR s.max_attempts < 1 THEN
        RAISE EXCEPTION 'max_attempts must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- what determines a vector; a change to any of it re-embeds every row
    s.embedding_version := left(encode(pg_catalog.sha256(convert_to(concat_ws('|',
        s.embedding_model, s.dimensions, s.normalize_vectors, s.text_expression,
        coalesce(s.chunk_size::text, '-'), s.chunk_overlap, coalesce(s.label, '')), 'UTF8')), 'hex'), 12);
    RETURN s;
END
$$;

-- === create / alter / drop =================================================================
CREATE OR REPLACE FUNCTION s3vl.create_sync(
    name             text,
    source           regclass,
    index_name       text,
    text_expression  text,
    metadata_columns text[]  DEFAULT '{}',
    embedding_model  text    DEFAULT 'amazon.titan-embed-text-v2:0',
    dimensions       int     DEFAULT NULL,
    capture          text    DEFAULT 'trigger',
    chunk_size       int     DEFAULT NULL,
    chunk_overlap    int     DEFAULT 0,
    key_columns      text[]  DEFAULT NULL,
    normalize_vectors        boolean DEFAULT true,
    store_text       boolean DEFAULT false,
    label            text    DEFAULT NULL,
    max_attempts     int     DEFAULT 5,
    backfill         boolean DEFAULT true)
RETURNS s3vl.syncs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs;
BEGIN
    IF EXISTS (SELECT FROM s3vl.syncs x WHERE x.name = create_sync.name) THEN
        RAISE EXCEPTION 'sync "%" already exists', create_sync.name USING ERRCODE = 'duplicate_object',
            HINT = 'Change it with s3vl.alter_sync, or drop it with s3vl.drop_sync.';
    END IF;
    s.name := create_sync.name;
    s.source := create_sync.source;
    s.key_columns := create_sync.key_columns;
    s.index_name := create_sync.index_name;
    s.text_expression := create_sync.text_expression;
    s.metadata_columns := create_sync.metadata_columns;
    s.embedding_model := create_sync.embedding_model;
    s.dimensions := create_sync.dimensions;
    s.normalize_vectors := coalesce(create_sync.normalize_vectors, true);
    s.capture := create_sync.capture;
    s.chunk_size := create_sync.chunk_size;
    s.chunk_overlap := create_sync.chunk_overlap;
    s.store_text := coalesce(create_sync.store_text, false);
    s.label := create_sync.label;
    s.max_attempts := create_sync.max_attempts;
    s.created_at := now();
    s.updated_at := now();
    s := s3vl._validate_sync(s);
    INSERT INTO s3vl.syncs SELECT s.*;
    IF s.capture = 'trigger' THEN
        PERFORM s3vl._install_triggers(s);
    END IF;  -- 'logical': the worker's slot reader (s3vl.capture_logical) feeds the outbox
    IF backfill THEN
        PERFORM s3vl.resync(s.name);
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION s3vl.create_sync(text, regclass, text, text, text[], text, int, text, int, int, text[], boolean, boolean, text, int, boolean)
    IS 'Define a sync from a table to a registered index; installs capture triggers and queues existing rows.';

-- Change a sync. Arguments left NULL keep their value. A change to what determines the vectors
-- (model, dimensions, text, chunking, label) gives a new embedding version, and a change to the
-- metadata columns rewrites metadata: both queue every row again (metadata-only rewrites call no model).
CREATE OR REPLACE FUNCTION s3vl.alter_sync(
    name             text,
    text_expression  text    DEFAULT NULL,
    metadata_columns text[]  DEFAULT NULL,
    embedding_model  text    DEFAULT NULL,
    dimensions       int     DEFAULT NULL,
    chunk_size       int     DEFAULT NULL,
    chunk_overlap    int     DEFAULT NULL,
    store_text       boolean DEFAULT NULL,
    label            text    DEFAULT NULL,
    max_attempts     int     DEFAULT NULL,
    index_name       text    DEFAULT NULL,
    disable_chunking boolean DEFAULT false)
RETURNS s3vl.syncs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old s3vl.syncs;
    s s3vl.syncs;
BEGIN
    SELECT * INTO old FROM s3vl.syncs x WHERE x.name = alter_sync.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync "%" does not exist', alter_sync.name USING ERRCODE = 'undefined_object';
    END IF;
    s := old;
    s.text_expression := coalesce(alter_sync.text_expression, s.text_expression);
    s.metadata_columns := coalesce(alter_sync.metadata_columns, s.metadata_columns);
    s.embedding_model := coalesce(alter_sync.embedding_model, s.embedding_model);
    s.dimensions := coalesce(alter_sync.dimensions, s.dimensions);
    s.chunk_size := CASE WHEN disable_chunking THEN NULL ELSE coalesce(alter_sync.chunk_size, s.chunk_size) END;
    s.chunk_overlap := CASE WHEN disable_chunking THEN 0 ELSE coalesce(alter_sync.chunk_overlap, s.chunk_overlap) END;
    s.store_text := coalesce(alter_sync.store_text, s.store_text);
    s.label := coalesce(alter_sync.label, s.label);
    s.max_attempts := coalesce(alter_sync.max_attempts, s.max_attempts);
    s.index_name := coalesce(alter_sync.index_name, s.index_name);
    s.updated_at := now();
    s := s3vl._validate_sync(s);
    UPDATE s3vl.syncs x SET
        index_name = s.index_name, text_expression = s.text_expression, metadata_columns = s.metadata_columns,
        read_columns = s.read_columns, embedding_model = s.embedding_model, dimensions = s.dimensions,
        chunk_size = s.chunk_size, chunk_overlap = s.chunk_overlap, store_text = s.store_text, label = s.label,
        embedding_version = s.embedding_version, max_attempts = s.max_attempts, updated_at = s.updated_at
    WHERE x.name = s.name;
    IF s.capture = 'trigger' AND s.read_columns IS DISTINCT FROM old.read_columns THEN
        PERFORM s3vl._install_capture(s.name);  -- the trigger compares the read columns
    END IF;
    IF s.index_name <> old.index_name THEN
        -- a new index holds none of this sync's vectors yet
        DELETE FROM s3vl.sync_state st WHERE st.sync_name = s.name;
    END IF;
    IF s.embedding_version <> old.embedding_version OR s.metadata_columns <> old.metadata_columns
       OR s.store_text <> old.store_text OR s.index_name <> old.index_name THEN
        PERFORM s3vl.resync(s.name);
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION s3vl.alter_sync(text, text, text[], text, int, int, int, boolean, text, int, text, boolean)
    IS 'Change a sync (NULL keeps a value); queues every row again when vectors or metadata change.';

-- Drop a sync: its triggers, outbox and state go. Vectors already in the index stay (they may be
-- shared or wanted); delete the index, or run reconcile first, to remove them.
CREATE OR REPLACE FUNCTION s3vl.drop_sync(name text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs;
BEGIN
    SELECT * INTO s FROM s3vl.syncs x WHERE x.name = drop_sync.name FOR UPDATE;
    IF NOT FOUND THEN
        IF if_exists THEN
            RETURN false;
        END IF;
        RAISE EXCEPTION 'sync "%" does not exist', drop_sync.name USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM s3vl._drop_triggers(s);
    PERFORM s3vl._drop_capture(s.name);
    DELETE FROM s3vl.syncs x WHERE x.name = s.name;  -- its outbox rows go with it (s3vl._syncs_cascade)
    RETURN true;
END
$$;
COMMENT ON FUNCTION s3vl.drop_sync(text, boolean) IS 'Remove a sync (triggers, queue, state); vectors in the index are kept.';

-- === the outbox protocol (the worker calls these by name) ==================================
-- Lease up to `batch` pending keys of one sync (the given one, else the sync with the oldest
-- waiting change) for `lease_seconds`. SKIP LOCKED: concurrent workers never wait on or take
-- each other's keys; an expired lease (dead worker) makes its keys leasable again.
CREATE OR REPLACE FUNCTION s3vl.lease(worker text, batch int, lease_seconds double precision DEFAULT 300,
                                      only_sync text DEFAULT NULL)
RETURNS TABLE (sync_name text, key text, version bigint, attempts int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target text;
BEGIN
    -- the oldest leasable change of each sync (outbox_pending_idx: one short index scan per
    -- sync, so the writers' enqueues maintain no second age index); outbox rows of a sync
    -- that no longer exists are never leased
    SELECT x.name INTO target FROM s3vl.syncs x
    CROSS JOIN LATERAL (
        SELECT o.enqueued_at FROM s3vl.outbox o
        WHERE o.sync_name = x.name AND o.status = 'pending' AND (o.lease_until IS NULL OR o.lease_until < now())
        ORDER BY o.enqueued_at
        LIMIT 1 FOR UPDATE SKIP LOCKED) AS oldest
    WHERE only_sync IS NULL OR x.name = only_sync
    ORDER BY oldest.enqueued_at
    LIMIT 1;
    IF target IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE s3vl.outbox o SET lease_until = now() + make_interval(secs => lease_seconds), leased_by = worker
    FROM (SELECT c.sync_name, c.key FROM s3vl.outbox c
          WHERE c.sync_name = target AND c.status = 'pending' AND (c.lease_until IS NULL OR c.lease_until < now())
          ORDER BY c.enqueued_at   -- outbox_pending_idx order: no sort of the whole queue
          LIMIT batch FOR UPDATE SKIP LOCKED) AS picked
    WHERE o.sync_name = picked.sync_name AND o.key = picked.key
    RETURNING o.sync_name, o.key, o.version, o.attempts;
END
$$;
COMMENT ON FUNCTION s3vl.lease(text, int, double precision, text) IS 'Lease a batch of pending keys of one sync (FOR UPDATE SKIP LOCKED, expiring lease).';

-- Record what a batch wrote and complete its keys, in one transaction. `results` is a jsonb
-- array of {key, version, deleted, content_hash, metadata_hash, embedding_version, chunk_count, chunked}.
-- A key whose outbox version moved on (changed meanwhile, or re-leased after this worker's
-- lease expired) is not completed: it is queued again and its state marked unknown
-- (content_hash NULL), because another worker may have written it concurrently; the next pass
-- re-embeds it and converges. Returns the keys completed and the keys requeued.
CREATE OR REPLACE FUNCTION s3vl.complete(sync_name text, worker text, results jsonb,
                                         OUT completed int, OUT requeued int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CREATE TEMPORARY TABLE IF NOT EXISTS s3vl_results (
        key text PRIMARY KEY, version bigint, deleted boolean, content_hash text, metadata_hash text,
        embedding_version text, chunk_count int, chunked boolean, current boolean) ON COMMIT DROP;
    TRUNCATE s3vl_results;
    INSERT INTO s3vl_results
    SELECT r.key, r.version, coalesce(r.deleted, false), r.content_hash, r.metadata_hash,
           r.embedding_version, coalesce(r.chunk_count, 0), coalesce(r.chunked, false), false
    FROM jsonb_to_recordset(results) AS r(key text, version bigint, deleted boolean, content_hash text,
                                          metadata_hash text, embedding_version text, chunk_count int,
                                          chunked boolean)
    ON CONFLICT (key) DO NOTHING;

    -- lock this batch's outbox rows (in key order) and see which versions are still current
    UPDATE s3vl_results r SET current = true
    FROM (SELECT o.key, o.version FROM s3vl.outbox o JOIN s3vl_results r2 ON r2.key = o.key
          WHERE o.sync_name = complete.sync_name ORDER BY o.key COLLATE "C" FOR UPDATE OF o) AS o
    WHERE o.key = r.key AND o.version = r.version;

    -- state: current keys get what was written; the others are marked unknown, keeping the
    -- larger chunk count so that the next pass deletes every chunk either worker wrote
    DELETE FROM s3vl.sync_state st USING s3vl_results r
    WHERE st.sync_name = complete.sync_name AND st.key = r.key AND r.current AND r.deleted;
    INSERT INTO s3vl.sync_state AS st (sync_name, key, content_hash, metadata_hash, embedding_version,
                                       chunk_count, chunked, synced_at)
    SELECT complete.sync_name, r.key,
           CASE WHEN r.current THEN r.content_hash END, CASE WHEN r.current THEN r.metadata_hash END,
           r.embedding_version, r.chunk_count, r.chunked, now()
    FROM s3vl_results r WHERE NOT (r.current AND r.deleted)
    ORDER BY r.key
    ON CONFLICT ON CONSTRAINT sync_state_pkey DO UPDATE SET
        content_hash = excluded.content_hash, metadata_hash = excluded.metadata_hash,
        embedding_version = excluded.embedding_version,
        chunk_count = CASE WHEN excluded.content_hash IS NULL THEN greatest(st.chunk_count, excluded.chunk_count)
                           ELSE excluded.chunk_count END,
        chunked = excluded.chunked,
        synced_at = excluded.synced_at;

    DELETE FROM s3vl.outbox o USING s3vl_results r
    WHERE o.sync_name = complete.sync_name AND o.key = r.key AND r.current;
    GET DIAGNOSTICS completed = ROW_COUNT;
    requeued := s3vl._enqueue_select(complete.sync_name, 'SELECT key FROM s3vl_results WHERE NOT current');
    -- this worker is done with them: make them leasable at once
    UPDATE s3vl.outbox o SET lease_until = NULL, leased_by = NULL
    FROM s3vl_results r
    WHERE o.sync_name = complete.sync_name AND o.key = r.key AND NOT r.current AND o.leased_by = complete.worker;
    UPDATE s3vl.syncs x SET last_success_at = now() WHERE x.name = complete.sync_name;
END
$$;
COMMENT ON FUNCTION s3vl.complete(text, text, jsonb) IS 'Record state and complete leased keys whose version is unchanged; requeue the rest.';

-- A batch's keys failed: count an attempt (only where the version is unchanged: a changed row
-- deserves fresh attempts), keep the last error, and mark keys failed after max_attempts.
-- `failures` is a jsonb array of {key, version, error}. With retry_after > 0 a failed key is
-- not leased again for retry_after * 2^attempts seconds (at most 10 minutes): a backoff.
DROP FUNCTION IF EXISTS s3vl.fail(text, text, jsonb);
CREATE OR REPLACE FUNCTION s3vl.fail(sync_name text, worker text, failures jsonb,
                                     retry_after double precision DEFAULT 0)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n int;
    maxa int := (s3vl._sync(sync_name)).max_attempts;
BEGIN
    UPDATE s3vl.outbox o SET
        attempts = o.attempts + 1,
        last_error = left(f.error, 2000),
        status = CASE WHEN o.attempts + 1 >= maxa THEN 'failed' ELSE 'pending' END,
        lease_until = CASE WHEN retry_after > 0 AND o.attempts + 1 < maxa
                           THEN now() + make_interval(secs => least(retry_after * 2 ^ o.attempts, 600)) END,
        leased_by = NULL
    FROM (SELECT * FROM jsonb_to_recordset(failures) AS x(key text, version bigint, error text) ORDER BY x.key COLLATE "C") AS f
    WHERE o.sync_name = fail.sync_name AND o.key = f.key AND o.version = f.version;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- a key changed meanwhile: just make it leasable again
    UPDATE s3vl.outbox o SET lease_until = NULL, leased_by = NULL
    FROM jsonb_to_recordset(failures) AS f(key text, version bigint, error text)
    WHERE o.sync_name = fail.sync_name AND o.key = f.key AND o.version <> f.version AND o.leased_by = worker;
    RETURN n;
END
$$;
COMMENT ON FUNCTION s3vl.fail(text, text, jsonb, double precision) IS 'Count a failed attempt for leased keys; failed after max_attempts with the last error.';

-- Give leased keys back at once (a worker stopping); nothing is counted against them.
CREATE OR REPLACE FUNCTION s3vl.release(sync_name text, worker text, keys text[])
RETURNS int
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        UPDATE s3vl.outbox o SET lease_until = NULL, leased_by = NULL
        WHERE o.sync_name = release.sync_name AND o.key = ANY (keys) AND o.leased_by = worker
        RETURNING 1)
    SELECT count(*)::int FROM r
$$;

-- A worker still busy with its batch keeps its lease (called between pipeline stages when a
-- batch runs long). Returns the keys still held.
CREATE OR REPLACE FUNCTION s3vl.extend_lease(sync_name text, worker text, keys text[], lease_seconds double precision)
RETURNS int
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        UPDATE s3vl.outbox o SET lease_until = now() + make_interval(secs => lease_seconds)
        WHERE o.sync_name = extend_lease.sync_name AND o.key = ANY (keys) AND o.leased_by = worker
        RETURNING 1)
    SELECT count(*)::int FROM r
$$;

-- Write-ahead for a batch, called right before its PutVectors: the keys about to be written are
-- marked unknown (content_hash, metadata_hash NULL) and their chunk count widened to cover the
-- vector keys about to exist. A worker that dies after the put but before s3vl.complete then
-- leaves a state that the next pass cannot mistake for current: a row changed back to its
-- recorded text is re-embedded, and a row deleted meanwhile has its new vectors deleted.
-- `writes` is a jsonb array of {key, embedding_version, chunk_count, chunked}.
CREATE OR REPLACE FUNCTION s3vl.begin_write(sync_name text, writes jsonb)
RETURNS int
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        INSERT INTO s3vl.sync_state AS st (sync_name, key, content_hash, metadata_hash, embedding_version,
                                           chunk_count, chunked, synced_at)
        SELECT begin_write.sync_name, x.key, NULL, NULL, x.embedding_version, coalesce(x.chunk_count, 0),
               coalesce(x.chunked, false), now()
        FROM jsonb_to_recordset(writes) AS x(key text, embedding_version text, chunk_count int, chunked boolean)
        ORDER BY x.key
        ON CONFLICT ON CONSTRAINT sync_state_pkey DO UPDATE SET
            content_hash = NULL, metadata_hash = NULL, embedding_version = excluded.embedding_version,
            chunk_count = greatest(st.chunk_count, excluded.chunk_count), chunked = excluded.chunked,
            synced_at = excluded.synced_at
        RETURNING 1)
    SELECT count(*)::int FROM w
$$;
COMMENT ON FUNCTION s3vl.begin_write(text, jsonb) IS 'Before a PutVectors: mark the keys about to be written unknown, widening their chunk count.';

-- Failed keys go back to pending with fresh attempts. NULL = every sync.
CREATE OR REPLACE FUNCTION s3vl.retry_failed(sync_name text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        UPDATE s3vl.outbox o SET status = 'pending', attempts = 0, lease_until = NULL, leased_by = NULL,
                                 enqueued_at = now()
        WHERE o.status = 'failed' AND (retry_failed.sync_name IS NULL OR o.sync_name = retry_failed.sync_name)
        RETURNING 1)
    SELECT count(*) FROM r
$$;
COMMENT ON FUNCTION s3vl.retry_failed(text) IS 'Put failed keys back in the queue (all syncs when NULL).';

-- === status ================================================================================
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
       END AS capture_lag_bytes              -- WAL the capture slot has not consumed yet (logical syncs)
FROM s3vl.syncs s
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
COMMENT ON VIEW s3vl.sync_status IS 'Per sync: queue (pending, leased, failed), lag, last success, last reconcile.';

-- Failed keys with their last error (for s3vl status and operators).
CREATE OR REPLACE VIEW s3vl.sync_failures AS
SELECT o.sync_name, o.key, o.attempts, o.last_error, o.enqueued_at
FROM s3vl.outbox o WHERE o.status = 'failed';

-- === grants ================================================================================
REVOKE ALL ON s3vl.syncs, s3vl.outbox, s3vl.sync_state, s3vl.reconcile_runs FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON s3vl.syncs, s3vl.outbox, s3vl.sync_state, s3vl.reconcile_runs TO s3vl_admin;
GRANT USAGE ON SEQUENCE s3vl.reconcile_runs_id_seq TO s3vl_admin;
GRANT SELECT ON s3vl.sync_status, s3vl.sync_failures TO s3vl_admin, s3vl_reader;
GRANT EXECUTE ON FUNCTION
    s3vl.embedding_models(), s3vl.sync_key_sql(text, text), s3vl.sync_text_sql(text, text),
    s3vl.sync_hash_sql(text, text), s3vl.sync_metadata_sql(text, text), s3vl.capture_slot_name()
    TO s3vl_admin, s3vl_reader;
GRANT EXECUTE ON FUNCTION
    s3vl._key_sql(text[], text), s3vl._sync(text), s3vl._hash_of_sql(text), s3vl._metadata_sql(regclass, text[], text),
    s3vl._key_match_sql(regclass, text[], text, text), s3vl._key_parse_sql(regclass, text[], text),
    s3vl._enqueue_sql(text, text), s3vl._enqueue_unique_sql(text, text), s3vl._enqueue_select(text, text),
    s3vl._install_triggers(s3vl.syncs), s3vl._drop_triggers(s3vl.syncs), s3vl._validate_sync(s3vl.syncs),
    s3vl._capture_function_name(text), s3vl._capture_function_sql(s3vl.syncs), s3vl._column_safety(regclass, text[]),
    s3vl._install_capture(text), s3vl._drop_capture(text),
    s3vl.load_rows(text, text[]), s3vl.enqueue(text, text[]), s3vl.resync(text),
    s3vl.create_sync(text, regclass, text, text, text[], text, int, text, int, int, text[], boolean, boolean, text, int, boolean),
    s3vl.alter_sync(text, text, text[], text, int, int, int, boolean, text, int, text, boolean),
    s3vl.drop_sync(text, boolean),
    s3vl.lease(text, int, double precision, text), s3vl.complete(text, text, jsonb), s3vl.fail(text, text, jsonb, double precision),
    s3vl.release(text, text, text[]), s3vl.retry_failed(text),
    s3vl.extend_lease(text, text, text[], double precision), s3vl.begin_write(text, jsonb),
    s3vl.capture_slot_name(), s3vl.capture_logical(int), s3vl.capture_consume(pg_lsn)
    TO s3vl_admin;
-- (the generated capture functions s3vl._capture_sync_<sync>() are executable by s3vl_admin only, see
-- s3vl._install_capture: trigger firing checks no EXECUTE privilege, so the table's writers need none)
REVOKE ALL ON FUNCTION s3vl._install_capture(text), s3vl._drop_capture(text) FROM PUBLIC;

-- === upgrade: syncs installed before the generated capture functions ==========================
-- Regenerate every trigger sync's capture function (a newer s3vl may generate better SQL), and
-- move triggers that still call another function (the old shared s3vl._capture()) onto it.
DO $$
DECLARE
    s s3vl.syncs;
    fn regprocedure;
BEGIN
    FOR s IN SELECT * FROM s3vl.syncs x WHERE x.capture = 'trigger' ORDER BY x.name LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid = s.source);
        PERFORM s3vl._install_capture(s.name);
        fn := format('s3vl.%I()', s3vl._capture_function_name(s.name))::regprocedure;
        IF (SELECT count(*) FROM pg_catalog.pg_trigger t
            WHERE t.tgrelid = s.source AND t.tgfoid = fn
              AND t.tgname IN ('s3vl_' || s.name || '_ins', 's3vl_' || s.name || '_upd',
                               's3vl_' || s.name || '_del', 's3vl_' || s.name || '_trunc')) <> 4 THEN
            BEGIN
                PERFORM s3vl._drop_triggers(s);
                PERFORM s3vl._install_triggers(s);
            EXCEPTION WHEN insufficient_privilege THEN
                -- only the table's owner may drop its triggers: the old ones keep working (the
                -- shared s3vl._capture() stays while any trigger uses it)
                RAISE WARNING 'sync %: capture triggers on % not upgraded: %', s.name, s.source, SQLERRM
                    USING HINT = format('Run s3vl install-sql as the owner of %s (or a member of its role).', s.source);
            END;
        END IF;
    END LOOP;
    -- the old shared capture function, once no trigger uses it any more
    IF to_regprocedure('s3vl._capture()') IS NOT NULL AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_trigger t WHERE t.tgfoid = to_regprocedure('s3vl._capture()')) THEN
        DROP FUNCTION s3vl._capture();
    END IF;
END
$$;
