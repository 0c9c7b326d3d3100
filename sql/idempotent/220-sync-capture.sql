-- Capture: row changes of a sync's source become keys in s3vl.outbox, by triggers (capture =>
-- 'trigger') or from a wal2json logical replication slot (capture => 'logical').
--
-- Both run with privileges a sync's declarer does not control (the triggers as s3vl, the slot
-- reader as the worker), so both touch only the key columns, whose types are PostgreSQL's own
-- (s3vl._builtin_type, checked when a sync is declared): they cast keys to text, compare them and
-- compare other columns by binary image, and never evaluate a sync's expressions or read its
-- source table (a TRUNCATE re-queues what the index holds instead of scanning the table).

-- === trigger capture =======================================================================
-- One statement-level trigger per operation and sync, with transition tables, all calling the
-- sync's own generated function s3vl._capture_sync_<sync>() (s3vl._capture_function_sql). Its SQL
-- is static (keys, read columns and sync name are spelled out at generation time), so each
-- writer session plans it once and every statement after that only runs it: no catalog look-up,
-- no string building, no dynamic EXECUTE per statement.
-- An UPDATE enqueues only keys whose read columns (keys, metadata, the text expression's
-- columns) changed, compared by value for types whose equal values have one binary form and by
-- binary image (`*=`) for the others; a changed key enqueues the old key and the new one.
-- SECURITY DEFINER so that writers to the source table need no privilege on s3vl.
-- The function is regenerated when the sync's read columns may change (create_sync,
-- alter_sync, every install-sql) and dropped by drop_sync.
CREATE OR REPLACE FUNCTION s3vl._capture_function_name(sync_name text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '_capture_sync_' || sync_name $$;  -- no other s3vl function starts so

-- The four capture triggers of a sync: name and the clause that creates each.
CREATE OR REPLACE FUNCTION s3vl._capture_triggers(sync_name text)
RETURNS TABLE (name text, clause text)
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('s3vl_' || sync_name || '_ins', 'AFTER INSERT ON %s REFERENCING NEW TABLE AS s3vl_new'),
           ('s3vl_' || sync_name || '_upd', 'AFTER UPDATE ON %s REFERENCING OLD TABLE AS s3vl_old NEW TABLE AS s3vl_new'),
           ('s3vl_' || sync_name || '_del', 'AFTER DELETE ON %s REFERENCING OLD TABLE AS s3vl_old'),
           ('s3vl_' || sync_name || '_trunc', 'AFTER TRUNCATE ON %s')
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
    ELSE
        -- TRUNCATE: whatever the index holds goes, and keys in flight are re-queued (their
        -- version moves on); rows inserted later in this transaction are captured as inserts
        %7$s;
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
        s.source::oid,
        s3vl._enqueue_sql(s.name, format(
            'SELECT st.key FROM s3vl.sync_state st WHERE st.sync_name = %1$L AND %2$s '
            'UNION SELECT o.key FROM s3vl.outbox o WHERE o.sync_name = %1$L AND %2$s', s.name, live)));
END
$gen$;

-- (Re)generate a sync's capture function. SECURITY DEFINER: the function belongs to the schema's
-- owner, whoever manages the sync; it is built from the stored definition only.
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

-- Attach and detach the triggers. These run as their caller, who needs the TRIGGER privilege on
-- the source (and, to drop them, must own it): s3vl does not hold privileges on users' tables.
CREATE OR REPLACE FUNCTION s3vl._install_triggers(s s3vl.syncs)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM s3vl._capture_triggers(s.name) LOOP
        EXECUTE format('CREATE TRIGGER %I ' || t.clause || ' FOR EACH STATEMENT EXECUTE FUNCTION s3vl.%I()',
                       t.name, s.source, s3vl._capture_function_name(s.name));
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION s3vl._drop_triggers(s s3vl.syncs)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid = s.source) THEN
        RETURN;  -- the source table is gone, and its triggers with it
    END IF;
    FOR t IN SELECT * FROM s3vl._capture_triggers(s.name) LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', t.name, s.source);
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
-- Both run as the worker (reading a slot needs its REPLICATION attribute); keys are taken from
-- the changes' key columns alone, cast to their built-in types.

-- The key of a decoded row image (wal2json's 'columns' or 'identity' array in `image_sql`) as SQL.
CREATE OR REPLACE FUNCTION s3vl._change_key_sql(s s3vl.syncs, image_sql text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('(SELECT %s FROM (SELECT %s) AS t)', s3vl._key_sql(s.key_columns, 't'),
                  string_agg(format('CAST((SELECT e->>''value'' FROM pg_catalog.jsonb_array_elements(%s) AS e '
                                    'WHERE e->>''name'' = %L) AS %s) AS %I',
                                    image_sql, c, format_type(a.atttypid, a.atttypmod), c), ', ' ORDER BY i))
    FROM unnest(s.key_columns) WITH ORDINALITY AS u(c, i)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = s.source AND a.attname = c
$$;

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
    keys text[];
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
    FOR s IN SELECT * FROM s3vl.syncs x WHERE x.capture = 'logical'
             AND EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = x.source) ORDER BY x.name LOOP
        SELECT n2.nspname, c2.relname INTO nsp, rel
        FROM pg_catalog.pg_class c2 JOIN pg_catalog.pg_namespace n2 ON n2.oid = c2.relnamespace WHERE c2.oid = s.source;
        IF EXISTS (SELECT FROM s3vl_changes WHERE d->>'action' = 'T' AND d->>'schema' = nsp AND d->>'table' = rel) THEN
            enqueued := enqueued + s3vl.resync(s.name);
        END IF;
        EXECUTE format(
            'SELECT array_agg(DISTINCT k) FROM ('
            'SELECT %1$s AS k FROM s3vl_changes ch WHERE ch.d->>''schema'' = %3$L AND ch.d->>''table'' = %4$L AND ch.d ? ''columns'' '
            'UNION ALL SELECT %2$s FROM s3vl_changes ch WHERE ch.d->>''schema'' = %3$L AND ch.d->>''table'' = %4$L AND ch.d ? ''identity'''
            ') AS q WHERE k IS NOT NULL',
            s3vl._change_key_sql(s, 'ch.d->''columns'''), s3vl._change_key_sql(s, 'ch.d->''identity'''), nsp, rel)
        INTO keys;
        IF keys IS NOT NULL THEN
            enqueued := enqueued + s3vl.enqueue(s.name, keys);
        END IF;
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
