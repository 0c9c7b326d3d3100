-- The functions s3vl generates for each sync and hands to the role that declared it.
--
-- A sync's expressions (its text expression, the rendering of its metadata columns, and every
-- read of its source table, where row-level security policies and user types may run code) are
-- evaluated in two functions only, both SECURITY DEFINER and owned by the sync's declaring role:
--
--   s3vl._gen_rows_<sync>(keys text[])  the current rows of these keys: key, text, metadata, hash
--   s3vl._gen_scan_<sync>(with_hash, after, max_rows)
--                                        every key of the source (with its content hash for
--                                        reconcile), optionally one page in key order
--
-- So a sync's SQL runs with the privileges of the role that declared it, never with those of the
-- worker or of s3vl: the worker, reconcile and s3vl's own functions only call these. Their owner
-- may ALTER them (it owns them) but not replace their bodies (it has no CREATE on schema s3vl),
-- so each body starts with a guard, written with pg_catalog-qualified operators only, that
-- refuses to run unless the current user is that owner: altered to SECURITY INVOKER, or given to
-- another role, a function stops instead of running as its caller.

-- Run DDL on objects that belong to (or are being given to) `owner`. A superuser just runs it. Any
-- other installer (Aurora's master user) must be a member of `owner` to ALTER ... OWNER TO it or
-- drop its objects, and `owner` must hold CREATE on schema s3vl to own a function there: both are
-- granted for these statements only and revoked before the transaction can commit, so neither
-- the installer nor the owner keeps them.
CREATE OR REPLACE FUNCTION s3vl._as_owner(owner regrole, statements text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    installer name := current_user;
    joined boolean := false;
    can_create boolean;
    stmt text;
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = installer) THEN
        FOREACH stmt IN ARRAY statements LOOP
            EXECUTE stmt;
        END LOOP;
        RETURN;
    END IF;
    IF NOT pg_catalog.pg_has_role(installer, owner, 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT %I TO %I', owner, installer);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 's3vl cannot give the functions of a sync to role %: %', owner, SQLERRM
                USING ERRCODE = 'insufficient_privilege',
                      HINT = format('The role that installed s3vl (%s) must be able to grant %s: a superuser, CREATEROLE (PostgreSQL 15), or ADMIN OPTION on %s.',
                                    installer, owner, owner);
        END;
        joined := true;
    END IF;
    can_create := pg_catalog.has_schema_privilege(owner, 's3vl', 'CREATE');
    IF NOT can_create THEN
        EXECUTE format('GRANT CREATE ON SCHEMA s3vl TO %I', owner);
    END IF;
    FOREACH stmt IN ARRAY statements LOOP
        EXECUTE stmt;
    END LOOP;
    IF NOT can_create THEN
        EXECUTE format('REVOKE CREATE ON SCHEMA s3vl FROM %I', owner);
    END IF;
    IF joined THEN
        EXECUTE format('REVOKE %I FROM %I', owner, installer);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION s3vl._rows_function_name(sync_name text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '_gen_rows_' || sync_name $$;  -- no other s3vl function starts with _gen_

CREATE OR REPLACE FUNCTION s3vl._scan_function_name(sync_name text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '_gen_scan_' || sync_name $$;

-- The first statement of every generated function: stop unless it runs as the sync's owner.
CREATE OR REPLACE FUNCTION s3vl._owner_guard_sql(s s3vl.syncs)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format($g$
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r
                   WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER AND r.oid OPERATOR(pg_catalog.=) %s::pg_catalog.oid) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = %L, HINT = %L;
    END IF;$g$,
        s.owner::oid,
        format('the functions of sync "%s" run only as the role that declared it (%s)', s.name, s.owner),
        format('Declare it again as the role whose privileges its expressions should have: SELECT s3vl.alter_sync(%L, redeclare => true).', s.name))
$$;

-- s3vl._gen_rows_<sync>(keys): the current text, metadata and content hash of the rows with these keys
-- (a key whose row is gone is absent). Static SQL: planned once per session, not per batch.
CREATE OR REPLACE FUNCTION s3vl._rows_function_sql(s s3vl.syncs)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format($f$CREATE OR REPLACE FUNCTION s3vl.%I(keys text[])
RETURNS TABLE (s3vl_key text, s3vl_content text, s3vl_metadata jsonb, s3vl_hash text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS %L$f$,
        s3vl._rows_function_name(s.name),
        format($b$
#variable_conflict use_column
-- generated by s3vl for sync %s from its definition: do not edit (alter_sync and install-sql regenerate it)
BEGIN%s
    RETURN QUERY
    SELECT k.s3vl_k, s3vl_r.s3vl_text, %s, %s
    FROM pg_catalog.unnest($1) AS k(s3vl_k)
    JOIN %s AS t ON %s
    CROSS JOIN LATERAL (SELECT (%s)::text AS s3vl_text) AS s3vl_r;
END
$b$,
            s.name, s3vl._owner_guard_sql(s),
            s3vl._metadata_sql(s.source, s.metadata_columns, 't'),
            s3vl._hash_of_sql('s3vl_r.s3vl_text'),
            s3vl._source_sql(s.source),
            s3vl._key_match_sql(s.source, s.key_columns, 't', 'k.s3vl_k'),
            s.text_expression))
$$;

-- s3vl._gen_scan_<sync>(with_hash, after_key, max_rows): every key of the source; with_hash also
-- renders the text (rows whose text is blank have no vectors and are left out) and returns its
-- content hash. With max_rows, one page in key order after after_key (NULL: from the start).
CREATE OR REPLACE FUNCTION s3vl._scan_function_sql(s s3vl.syncs)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH parts AS (
        SELECT s3vl._key_sql(s.key_columns, 't') AS key_sql,
               s3vl._source_sql(s.source) AS src,
               format('CROSS JOIN LATERAL (SELECT CASE WHEN $1 THEN (%s)::text END AS s3vl_text) AS s3vl_r', s.text_expression) AS txt,
               format('(NOT $1 OR s3vl_r.s3vl_text OPERATOR(pg_catalog.~) %L)', '[^[:space:]]') AS nonblank,
               format('CASE WHEN $1 THEN %s END', s3vl._hash_of_sql('s3vl_r.s3vl_text')) AS hash,
               (SELECT string_agg(format('t.%I', c), ', ' ORDER BY i) FROM unnest(s.key_columns) WITH ORDINALITY AS u(c, i)) AS order_by,
               s3vl._key_match_sql(s.source, s.key_columns, 't', '$2') AS key_at)
    SELECT format($f$CREATE OR REPLACE FUNCTION s3vl.%I(with_hash boolean, after_key text, max_rows bigint)
RETURNS TABLE (s3vl_key text, s3vl_hash text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS %L$f$,
        s3vl._scan_function_name(s.name),
        format($b$
#variable_conflict use_column
-- generated by s3vl for sync %1$s from its definition: do not edit (alter_sync and install-sql regenerate it)
BEGIN%2$s
    IF $3 IS NULL THEN
        RETURN QUERY SELECT %3$s, %4$s FROM %5$s AS t %6$s WHERE %7$s;
    ELSE
        RETURN QUERY SELECT %3$s, %4$s FROM %5$s AS t %6$s
        WHERE %7$s AND ($2 IS NULL OR (%8$s) OPERATOR(pg_catalog.>) (%9$s))
        ORDER BY %8$s LIMIT $3;
    END IF;
END
$b$,
            s.name, s3vl._owner_guard_sql(s), p.key_sql, p.hash, p.src, p.txt, p.nonblank, p.order_by,
            s3vl._key_parse_sql(s.source, s.key_columns, '$2')))
    FROM parts AS p
$$;

-- (Re)generate a sync's two functions from its stored definition and give them to its owner,
-- who grants s3vl's own functions (this function's owner) the right to call them.
CREATE OR REPLACE FUNCTION s3vl._install_generated(sync_name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s s3vl.syncs := s3vl._sync(sync_name);
    rows_fn text := format('s3vl.%I(text[])', s3vl._rows_function_name(s.name));
    scan_fn text := format('s3vl.%I(boolean, text, bigint)', s3vl._scan_function_name(s.name));
    statements text[] := '{}';
    fn text;
BEGIN
    -- a function already given to another role is replaced through that role (CREATE OR REPLACE
    -- needs its owner), so drop it first and create it afresh
    PERFORM s3vl._drop_generated(s.name);
    EXECUTE s3vl._rows_function_sql(s);
    EXECUTE s3vl._scan_function_sql(s);
    FOREACH fn IN ARRAY ARRAY[rows_fn, scan_fn] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        statements := statements || format('ALTER FUNCTION %s OWNER TO %I', fn, s.owner)
                                 || format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, current_user);
    END LOOP;
    PERFORM s3vl._as_owner(s.owner, statements);
END
$$;

CREATE OR REPLACE FUNCTION s3vl._drop_generated(sync_name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    by_owner record;
BEGIN
    FOR by_owner IN
        SELECT p.proowner::regrole AS owner, array_agg(format('DROP FUNCTION %s', p.oid::regprocedure)) AS drops
        FROM pg_catalog.pg_proc p
        WHERE p.oid IN (to_regprocedure(format('s3vl.%I(text[])', s3vl._rows_function_name(sync_name))),
                        to_regprocedure(format('s3vl.%I(boolean, text, bigint)', s3vl._scan_function_name(sync_name))))
        GROUP BY p.proowner LOOP
        PERFORM s3vl._as_owner(by_owner.owner, by_owner.drops);
    END LOOP;
END
$$;
