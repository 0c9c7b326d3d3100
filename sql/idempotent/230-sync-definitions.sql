-- Sync definitions: s3vl.create_sync / alter_sync / drop_sync.
--
-- A definition is checked in two places, each by the role that may safely do it:
--   * its text expression, by the declaring role itself (s3vl._check_expression, SECURITY INVOKER:
--     checking parses and plans it, which may run the declarer's own functions);
--   * everything else, by s3vl (s3vl._declare_sync, SECURITY DEFINER), without evaluating any of
--     the declarer's SQL: the source table, key and metadata columns and their types, the index,
--     the model, chunking. Only these functions write s3vl.syncs (no role holds DML on it), and
--     they record the declaring role as the sync's owner (sql/idempotent/210-sync-generated.sql).
-- Triggers are attached and detached by the caller, who needs the TRIGGER privilege on the
-- source (and must own it to drop them).

-- The text expression, checked as its declarer: one SQL expression over the source row only,
-- of a text type, without subqueries (a change to what a subquery reads would never be captured).
-- Returns the source columns it reads.
CREATE OR REPLACE FUNCTION s3vl._check_expression(source regclass, text_expression text)
RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    view_name text := 's3vl_expr_check_' || pg_catalog.pg_backend_pid();
    view_oid oid;
    probe refcursor;
    err text;
    denied text;
    text_type regtype;
    expr_cols text[];
BEGIN
    IF text_expression IS NULL OR btrim(text_expression) = '' THEN
        RAISE EXCEPTION 'text_expression is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        -- parsed as one query first (a cursor cannot hold two): nothing smuggled after a ';' ever
        -- runs; and in a WHERE clause, where aggregates, window and set-returning functions are
        -- refused. What the caller may not read fails only as the cursor starts, once the whole
        -- string parsed as that one query: it is reported below, after the subquery check.
        OPEN probe FOR EXECUTE format('SELECT 1 FROM ONLY %s AS t WHERE (%s) IS NOT NULL LIMIT 0', source, text_expression);
        CLOSE probe;
    EXCEPTION WHEN invalid_cursor_definition THEN
        RAISE EXCEPTION 'text_expression must be one SQL expression over %', source
            USING ERRCODE = 'invalid_parameter_value';
    WHEN insufficient_privilege THEN
        GET STACKED DIAGNOSTICS denied = MESSAGE_TEXT;
    WHEN syntax_error OR undefined_column OR undefined_function OR datatype_mismatch
              OR undefined_table OR grouping_error OR feature_not_supported OR invalid_text_representation
              OR ambiguous_column OR wrong_object_type OR windowing_error THEN
        GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
        RAISE EXCEPTION 'text_expression % is not valid over %: %', quote_literal(text_expression), source, err
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Write an expression over the table''s columns, e.g. name || ''. '' || coalesce(description, ''''); qualify functions outside pg_catalog.';
    END;
    EXECUTE format('CREATE TEMPORARY VIEW %I AS SELECT (%s) AS e FROM ONLY %s AS t', view_name, text_expression, source);
    view_oid := ('pg_temp.' || quote_ident(view_name))::regclass::oid;
    SELECT a.atttypid::regtype INTO text_type FROM pg_catalog.pg_attribute a WHERE a.attrelid = view_oid AND a.attname = 'e';
    IF EXISTS (SELECT FROM pg_catalog.pg_rewrite r WHERE r.ev_class = view_oid AND r.ev_action::text LIKE '%{SUBLINK %') THEN
        EXECUTE format('DROP VIEW pg_temp.%I', view_name);
        RAISE EXCEPTION 'text_expression may not contain a subquery: changes to what it reads would never be captured'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use the columns of the source row only: denormalise into the source table, or sync a view''s base table.';
    END IF;
    SELECT array_agg(DISTINCT a.attname::text) INTO expr_cols
    FROM pg_catalog.pg_rewrite r
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
    JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND (a.attnum = d.refobjsubid OR (d.refobjsubid = 0 AND a.attnum > 0))
    WHERE r.ev_class = view_oid AND d.refobjid = source AND NOT a.attisdropped;
    EXECUTE format('DROP VIEW pg_temp.%I', view_name);
    IF denied IS NOT NULL THEN
        RAISE EXCEPTION 'text_expression % is not valid over %: %', quote_literal(text_expression), source, denied
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A sync''s expressions run with the privileges of the role that declares it: that role must be allowed to read what they read.';
    END IF;
    IF (SELECT t.typcategory FROM pg_catalog.pg_type t WHERE t.oid = text_type) <> 'S' THEN
        RAISE EXCEPTION 'text_expression must be of type text, not %', text_type
            USING ERRCODE = 'datatype_mismatch', HINT = 'Cast it: (' || text_expression || ')::text';
    END IF;
    RETURN coalesce(expr_cols, '{}');
END
$$;

-- The columns a sync reads (keys, metadata, the text expression's), checked as its owner at
-- declaration: its generated functions read them with that role's privileges, so a column the
-- role may not SELECT is refused now, by name, instead of pausing the sync at its first batch.
-- The owner is the login (session_user), as s3vl._declare_sync records it.
CREATE OR REPLACE FUNCTION s3vl._check_readable(s s3vl.syncs)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    denied text;
BEGIN
    SELECT string_agg(c, ', ' ORDER BY c) INTO denied FROM pg_catalog.unnest(s.read_columns) AS c
    WHERE NOT pg_catalog.has_column_privilege(s.owner, s.source, c, 'SELECT');
    IF denied IS NOT NULL THEN
        RAISE EXCEPTION 'role % may not read column(s) % of %: a sync reads its source with the privileges of the role that declares it',
            s.owner, denied, s.source
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('GRANT SELECT (%s) ON %s TO %s, or have a role that may read them declare the sync.',
                                denied, s.source, s.owner);
    END IF;
END
$$;

-- Everything about a definition but its text expression, checked and completed (key columns,
-- read columns, dimensions, embedding version). Evaluates nothing the declarer controls.
-- `expression_columns` are the source columns the text expression reads (s3vl._check_expression).
CREATE OR REPLACE FUNCTION s3vl._check_definition(s s3vl.syncs, expression_columns text[])
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
    bad text;
BEGIN
    IF s.name IS NULL OR s.name !~ '^[a-z_][a-z0-9_]{0,39}$' THEN
        RAISE EXCEPTION 'invalid sync name %: use 1-40 lowercase letters, digits or _, not starting with a digit',
            coalesce(quote_literal(s.name), 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT cl.oid, cl.relkind, cl.relpersistence, n.nspname INTO rel
    FROM pg_catalog.pg_class cl JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace WHERE cl.oid = s.source;
    IF NOT FOUND OR rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'source % is not a table', s.source USING ERRCODE = 'wrong_object_type';
    END IF;
    IF rel.relpersistence = 't' THEN
        RAISE EXCEPTION 'source % is a temporary table: the worker cannot see it', s.source
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF rel.nspname IN ('s3vl', 'pg_catalog', 'information_schema', 'pg_toast') THEN
        RAISE EXCEPTION 'source % is one of PostgreSQL''s or s3vl''s own tables, which cannot be synced', s.source
            USING ERRCODE = 'wrong_object_type';
    END IF;
    s.source_name := s.source::text;

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
    -- s3vl's triggers and the worker cast and compare keys with s3vl's privileges: only
    -- PostgreSQL's own types, whose casts and operators no role can redefine
    SELECT string_agg(format('%I (%s)', a.attname, format_type(a.atttypid, a.atttypmod)), ', ') INTO bad
    FROM unnest(s.key_columns) AS k(c)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = s.source AND a.attname = k.c
    WHERE NOT s3vl._builtin_type(a.atttypid);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'key columns of % must be of PostgreSQL''s built-in types; % is not', s.source, bad
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'A user-defined type, domain, enum or composite key could run its owner''s code with s3vl''s privileges; key the sync on columns of built-in types (key_columns => ARRAY[...]).';
    END IF;
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
    IF s.text_expression IS NULL OR btrim(s.text_expression) = '' THEN
        RAISE EXCEPTION 'text_expression is empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM unnest(coalesce(expression_columns, '{}')) AS e(c)
               WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = s.source
                                 AND a.attname = e.c AND a.attnum > 0 AND NOT a.attisdropped)) THEN
        RAISE EXCEPTION 'the columns read by text_expression are not all columns of %', s.source
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    s.read_columns := ARRAY(SELECT DISTINCT x FROM unnest(s.key_columns || s.metadata_columns
                                                         || coalesce(expression_columns, '{}')) x ORDER BY 1);

    -- index and model: the index is registered and no other sync writes it, the model is known,
    -- the dimensions agree
    SELECT * INTO idx FROM s3vl.indexes i WHERE i.name = s.index_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'index "%" is not registered', s.index_name USING ERRCODE = 'undefined_object',
            HINT = 'Register it first: SELECT s3vl.register_index(name, index_arn).';
    END IF;
    SELECT x.name INTO c FROM s3vl.syncs x WHERE x.index_name = s.index_name AND x.name <> s.name;
    IF FOUND THEN
        RAISE EXCEPTION 'index "%" is already written by sync "%"', s.index_name, c USING ERRCODE = 'duplicate_object',
            HINT = 'Two syncs writing one index would overwrite each other''s vectors with equal keys: register another index for this sync.';
    END IF;
    SELECT * INTO m FROM s3vl.embedding_model(s.embedding_model);
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
    s.normalize_vectors := coalesce(s.normalize_vectors, true);
    s.store_text := coalesce(s.store_text, false);

    -- what determines a vector; a change to any of it re-embeds every row
    s.embedding_version := left(encode(pg_catalog.sha256(convert_to(concat_ws('|',
        s.embedding_model, s.dimensions, s.normalize_vectors, s.text_expression,
        coalesce(s.chunk_size::text, '-'), s.chunk_overlap, coalesce(s.label, '')), 'UTF8')), 'hex'), 12);
    RETURN s;
END
$$;

-- Store a checked definition for `owner` and (re)generate the sync's functions: the only writer
-- of s3vl.syncs. Not callable by any role: s3vl's own functions call it.
CREATE OR REPLACE FUNCTION s3vl._store_sync(s s3vl.syncs, expression_columns text[], owner regrole)
RETURNS s3vl.syncs
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old s3vl.syncs;
BEGIN
    SELECT * INTO old FROM s3vl.syncs x WHERE x.name = s.name FOR UPDATE;
    s := s3vl._check_definition(s, expression_columns);
    s.owner := owner;
    s.updated_at := now();
    IF old.name IS NULL THEN
        s.created_at := now();
        INSERT INTO s3vl.syncs SELECT s.*;
    ELSE
        UPDATE s3vl.syncs x SET
            index_name = s.index_name, text_expression = s.text_expression, metadata_columns = s.metadata_columns,
            read_columns = s.read_columns, embedding_model = s.embedding_model, dimensions = s.dimensions,
            chunk_size = s.chunk_size, chunk_overlap = s.chunk_overlap, store_text = s.store_text, label = s.label,
            embedding_version = s.embedding_version, max_attempts = s.max_attempts, owner = s.owner,
            paused_until = NULL, last_error = NULL, last_error_at = NULL, updated_at = s.updated_at
        WHERE x.name = s.name;
        IF s.index_name <> old.index_name THEN
            -- a new index holds none of this sync's vectors yet
            DELETE FROM s3vl.sync_state st WHERE st.sync_name = s.name;
        END IF;
    END IF;
    PERFORM s3vl._install_generated(s.name);
    IF s.capture = 'trigger' AND (old.name IS NULL OR s.read_columns IS DISTINCT FROM old.read_columns) THEN
        PERFORM s3vl._install_capture(s.name);  -- the trigger compares the read columns
    END IF;
    RETURN s;
END
$$;

-- Declare (or re-declare) a sync as the session's login: the expressions of the sync will run
-- with its privileges. The login, not current_user, because inside s3vl's functions current_user
-- is s3vl itself; a caller who SET ROLE to a more privileged role still declares as themselves.
CREATE OR REPLACE FUNCTION s3vl._declare_sync(s s3vl.syncs, expression_columns text[])
RETURNS s3vl.syncs
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN s3vl._store_sync(s, expression_columns, session_user::regrole);
END
$$;

-- The definition, checked, with the owner it keeps: a change to what is evaluated or exposed
-- (the text expression, the metadata columns, storing the text in the index) or an explicit
-- re-declaration makes the caller its owner; any other change (a model, chunking, attempts, the
-- index) keeps the role whose SQL it runs.
CREATE OR REPLACE FUNCTION s3vl._alter_declared(s s3vl.syncs, expression_columns text[], redeclare boolean)
RETURNS s3vl.syncs
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old s3vl.syncs := s3vl._sync(s.name);
BEGIN
    RETURN s3vl._store_sync(s, expression_columns,
        CASE WHEN redeclare OR s.text_expression IS DISTINCT FROM old.text_expression
                  OR s.metadata_columns IS DISTINCT FROM old.metadata_columns
                  OR (s.store_text AND NOT old.store_text)
             THEN session_user::regrole ELSE old.owner END);
END
$$;

CREATE OR REPLACE FUNCTION s3vl._undeclare_sync(sync_name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM s3vl._drop_generated(sync_name);
    PERFORM s3vl._drop_capture(sync_name);
    DELETE FROM s3vl.syncs x WHERE x.name = sync_name;  -- its outbox rows go with it (s3vl._syncs_cascade)
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
    expression_columns text[];
BEGIN
    IF EXISTS (SELECT FROM s3vl.syncs x WHERE x.name = create_sync.name) THEN
        RAISE EXCEPTION 'sync "%" already exists', create_sync.name USING ERRCODE = 'duplicate_object',
            HINT = 'Change it with s3vl.alter_sync, or drop it with s3vl.drop_sync.';
    END IF;
    IF create_sync.source IS NULL THEN
        RAISE EXCEPTION 'source is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    s.name := create_sync.name;
    s.source := create_sync.source;
    s.key_columns := create_sync.key_columns;
    s.index_name := create_sync.index_name;
    s.text_expression := create_sync.text_expression;
    s.metadata_columns := create_sync.metadata_columns;
    s.embedding_model := create_sync.embedding_model;
    s.dimensions := create_sync.dimensions;
    s.normalize_vectors := create_sync.normalize_vectors;
    s.capture := create_sync.capture;
    s.chunk_size := create_sync.chunk_size;
    s.chunk_overlap := create_sync.chunk_overlap;
    s.store_text := create_sync.store_text;
    s.label := create_sync.label;
    s.max_attempts := create_sync.max_attempts;
    expression_columns := s3vl._check_expression(s.source, s.text_expression);
    s := s3vl._declare_sync(s, expression_columns);
    PERFORM s3vl._check_readable(s);
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
    IS 'Define a sync from a table to a registered index; its expressions run with your privileges. Installs capture triggers and queues existing rows.';

-- Change a sync. Arguments left NULL keep their value. A change to what determines the vectors
-- (model, dimensions, text, chunking, label) gives a new embedding version, and a change to the
-- metadata columns rewrites metadata: both queue every row again (metadata-only rewrites call no
-- model). redeclare => true makes the caller the sync's owner without changing anything else.
DROP FUNCTION IF EXISTS s3vl.alter_sync(text, text, text[], text, int, int, int, boolean, text, int, text, boolean);
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
    disable_chunking boolean DEFAULT false,
    redeclare        boolean DEFAULT false)
RETURNS s3vl.syncs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old s3vl.syncs;
    s s3vl.syncs;
    expression_columns text[];
BEGIN
    SELECT * INTO old FROM s3vl.syncs x WHERE x.name = alter_sync.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync "%" does not exist', alter_sync.name USING ERRCODE = 'undefined_object';
    END IF;
    old := s3vl._live_sync(old.name);
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
    IF alter_sync.text_expression IS NOT NULL OR alter_sync.metadata_columns IS NOT NULL
       OR coalesce(alter_sync.store_text, false) OR coalesce(redeclare, false) THEN
        expression_columns := s3vl._check_expression(s.source, s.text_expression);  -- as the caller: its next owner
    ELSE
        expression_columns := old.read_columns;  -- what it evaluates is unchanged, and so is its owner
    END IF;
    s := s3vl._alter_declared(s, expression_columns, coalesce(redeclare, false));
    PERFORM s3vl._check_readable(s);
    IF s.embedding_version <> old.embedding_version OR s.metadata_columns <> old.metadata_columns
       OR s.store_text <> old.store_text OR s.index_name <> old.index_name THEN
        PERFORM s3vl.resync(s.name);
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION s3vl.alter_sync(text, text, text[], text, int, int, int, boolean, text, int, text, boolean, boolean)
    IS 'Change a sync (NULL keeps a value); queues every row again when vectors or metadata change; redeclare makes you its owner.';

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
    SELECT * INTO s FROM s3vl.syncs x WHERE x.name = drop_sync.name;
    IF NOT FOUND THEN
        IF if_exists THEN
            RETURN false;
        END IF;
        RAISE EXCEPTION 'sync "%" does not exist', drop_sync.name USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM s3vl._drop_triggers(s);
    PERFORM s3vl._undeclare_sync(s.name);
    RETURN true;
END
$$;
COMMENT ON FUNCTION s3vl.drop_sync(text, boolean) IS 'Remove a sync (triggers, queue, state); vectors in the index are kept.';
