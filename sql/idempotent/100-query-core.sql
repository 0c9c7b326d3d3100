-- Query interface core: error classes, the one Lambda call path, configuration.
--
-- Every s3vl function that talks to AWS goes through s3vl._invoke(operation, body): it reads
-- s3vl.config, builds the payload with jsonb functions only, calls aws_lambda.invoke (Aurora's
-- extension; the local stack's plpython stand-in in local/s3vl_local/sql/), and turns every failure, from
-- aws_lambda itself or from the Lambda's {ok:false, error:{code,...}} answer, into one error class
-- with its own SQLSTATE, a message and a hint (s3vl.error_classes()).
-- Functions are SECURITY DEFINER (callers need no rights on aws_lambda or the tables) with a
-- pinned search_path; access is granted per role at the end of each file.

-- One row per error class: the code (as the query Lambda names it), its SQLSTATE and hint.
-- SQLSTATE class 'S3' is s3vl's own (classes 5-9 and I-Z are free for implementations).
CREATE OR REPLACE FUNCTION s3vl.error_classes()
RETURNS TABLE (code text, sqlstate text, retryable boolean, hint text)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM (VALUES
        ('not_configured',       'S3V01', false,
         'Run SELECT s3vl.configure(lambda_arn, aws_region) as a member of s3vl_admin.'),
        ('index_not_registered', 'S3V02', false,
         'Register it with SELECT s3vl.register_index(name, index_arn); SELECT * FROM s3vl.list_indexes() shows what is registered.'),
        ('index_not_found',      'S3V03', false,
         'S3 Vectors has no such index: check the ARN (aws s3vectors get-index --index-arn ...) and register it again.'),
        ('invalid_argument',     'S3V04', false,
         'Fix the parameter named in the message.'),
        ('invalid_filter',       'S3V05', false,
         'A filter is a JSON object such as {"category": "test"}, {"price": {"$lt": 500}} or {"$and": [...]}; operators: $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or.'),
        ('dimension_mismatch',   'S3V06', false,
         'The vector needs as many elements as the index has dimensions (dimension in s3vl.list_indexes()).'),
        ('vector_not_found',     'S3V07', false,
         'No vector has this key in the index; s3vl.get_vectors shows which keys exist.'),
        ('lambda_unreachable',   'S3V08', true,
         'aws_lambda.invoke could not reach Lambda: check the network path (Lambda VPC endpoint or NAT), the IAM role associated with the cluster for Lambda, aws_lambda.connect_timeout_ms; then SELECT * FROM s3vl.validate_config().'),
        ('lambda_not_found',     'S3V09', false,
         'No Lambda function has the configured ARN: check the ARN given to s3vl.configure() (SELECT * FROM s3vl.get_config()).'),
        ('lambda_error',         'S3V10', false,
         'The query Lambda failed without an s3vl answer (unhandled error, or not the s3vl query Lambda); see its CloudWatch logs.'),
        ('throttled',            'S3V11', true,
         'AWS throttled the request beyond the Lambda''s retries: retry with backoff, or lower the concurrency of vector queries.'),
        ('access_denied',        'S3V12', false,
         'Grant the Lambda''s execution role s3vectors:QueryVectors, GetVectors, ListVectors and GetIndex on the index (and bedrock:InvokeModel for query_text).'),
        ('service_unavailable',  'S3V13', true,
         'An AWS service failed or could not be reached; retry shortly.'),
        ('timeout',              'S3V14', true,
         'Raise the time limit (s3vl.configure(..., timeout_seconds => n) and the Lambda''s timeout) or lower top_k.'),
        ('embedding_failed',     'S3V15', false,
         'Check the index''s embedding_model (s3vl.list_indexes()) and the Lambda role''s Bedrock model access.'),
        ('invalid_request',      'S3V16', false,
         'The deployed query Lambda does not understand this request: deploy lambda/ from the same s3vl version as the SQL.'),
        ('internal',             'S3V17', false,
         'The query Lambda hit an internal error; its CloudWatch logs have the request id shown in the message.'),
        ('invalid_index_arn',    'S3V18', false,
         'An S3 Vectors index ARN looks like arn:aws:s3vectors:<region>:<account>:bucket/<bucket>/index/<index>.'),
        ('no_embedding_model',   'S3V19', false,
         'Register the index with its model: SELECT s3vl.register_index(name, index_arn, embedding_model => ''amazon.titan-embed-text-v2:0'').')
    ) AS t (code, sqlstate, retryable, hint)
$$;
COMMENT ON FUNCTION s3vl.error_classes() IS 'Every s3vl query error class: code, SQLSTATE, whether a retry can help, hint.';

-- Raise error class `code` with `message`; unknown codes are raised as 'internal'.
CREATE OR REPLACE FUNCTION s3vl._raise(code text, message text, detail text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
BEGIN
    SELECT * INTO c FROM s3vl.error_classes() e WHERE e.code = _raise.code;
    IF NOT FOUND THEN
        SELECT * INTO c FROM s3vl.error_classes() e WHERE e.code = 'internal';
        detail := concat_ws('; ', 'error code ' || quote_literal(_raise.code), detail);
    END IF;
    RAISE EXCEPTION USING ERRCODE = c.sqlstate, MESSAGE = message, HINT = c.hint,
        DETAIL = concat_ws('; ', 'class ' || c.code || CASE WHEN c.retryable THEN ' (retryable)' ELSE '' END, detail);
END
$$;

-- The configured Lambda, or the not_configured error.
CREATE OR REPLACE FUNCTION s3vl._config()
RETURNS s3vl.config
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg s3vl.config;
BEGIN
    SELECT * INTO cfg FROM s3vl.config;
    IF NOT FOUND THEN
        PERFORM s3vl._raise('not_configured', 's3vl is not configured: no query Lambda is set');
    END IF;
    RETURN cfg;
END
$$;

-- Call the query Lambda: {"operation": op} || body -> its result, or raise the error class.
CREATE OR REPLACE FUNCTION s3vl._invoke(operation text, body jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg s3vl.config := s3vl._config();
    request jsonb := jsonb_build_object('operation', operation) || coalesce(body, '{}'::jsonb);
    old_timeout text := current_setting('aws_lambda.request_timeout_ms', true);
    status integer;
    answer jsonb;
    msg text;
    det text;
    state text;
    err jsonb;
BEGIN
    IF to_regnamespace('aws_lambda') IS NULL THEN
        PERFORM s3vl._raise('lambda_unreachable', 'the aws_lambda extension is not installed',
            'run CREATE EXTENSION aws_lambda CASCADE (Aurora PostgreSQL) or s3vl dev up (local)');
    END IF;
    BEGIN
        PERFORM set_config('aws_lambda.request_timeout_ms', (cfg.timeout_seconds * 1000)::text, true);
        SELECT r.status_code, r.payload INTO status, answer
        FROM aws_lambda.invoke(aws_commons.create_lambda_function_arn(cfg.lambda_arn, cfg.aws_region),
                               request) AS r;
        PERFORM set_config('aws_lambda.request_timeout_ms', coalesce(nullif(old_timeout, ''), '3000'), true);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, state = RETURNED_SQLSTATE;
        PERFORM set_config('aws_lambda.request_timeout_ms', coalesce(nullif(old_timeout, ''), '3000'), true);
        IF state LIKE 'S3%' THEN
            RAISE;
        ELSIF msg = 'lambda invocation failed' THEN
            PERFORM s3vl._raise('lambda_error', 'the query Lambda failed: ' || msg, det);
        ELSIF msg = 'invoke API failed' THEN
            det := coalesce(det, '');
            IF det ~* '(RequestTooLargeException|RequestEntityTooLarge|must be smaller than)' THEN
                PERFORM s3vl._raise('invalid_argument', 'the request is larger than Lambda accepts (6 MB)', det);
            ELSIF det ~* '(ResourceNotFound|Function not found)' THEN
                PERFORM s3vl._raise('lambda_not_found', 'the query Lambda ' || cfg.lambda_arn || ' does not exist', det);
            ELSIF det ~* '(TooManyRequests|Throttl|Rate exceeded)' THEN
                PERFORM s3vl._raise('throttled', 'Lambda throttled the invocation', det);
            ELSIF det ~* '(AccessDenied|not authorized)' THEN
                PERFORM s3vl._raise('access_denied', 'the database may not invoke ' || cfg.lambda_arn, det);
            ELSIF det ~* '(timed out|timeout)' THEN
                PERFORM s3vl._raise('timeout', 'the query Lambda did not answer in time', det);
            ELSE
                PERFORM s3vl._raise('lambda_unreachable', 'cannot invoke the query Lambda: ' || msg, det);
            END IF;
        ELSE
            RAISE;
        END IF;
    END;
    IF answer IS NULL OR jsonb_typeof(answer) <> 'object' OR NOT answer ? 'ok' THEN
        PERFORM s3vl._raise('lambda_error', 'the query Lambda returned an unexpected answer',
            'status ' || status || ', payload ' || left(coalesce(answer::text, 'null'), 200));
    END IF;
    IF (answer ->> 'ok')::boolean THEN
        RETURN coalesce(answer -> 'result', '{}'::jsonb);
    END IF;
    err := answer -> 'error';
    PERFORM s3vl._raise(coalesce(err ->> 'code', 'internal'), coalesce(err ->> 'message', 'the query Lambda failed'),
        'request id ' || coalesce(answer ->> 'request_id', '?'));
    RETURN NULL;
END
$$;

-- Set the query Lambda. Returns true; warns (does not fail) when it cannot be reached yet.
DROP FUNCTION IF EXISTS s3vl.configure(text, text, integer);  -- replaced by the 4-argument form
CREATE OR REPLACE FUNCTION s3vl.configure(
    lambda_arn text,
    aws_region text DEFAULT 'us-west-2',
    timeout_seconds integer DEFAULT 30,
    registered_indexes_only boolean DEFAULT false
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    arn_region text;
    v record;
BEGIN
    IF lambda_arn IS NULL OR lambda_arn !~ '^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?$' THEN
        PERFORM s3vl._raise('invalid_argument',
            format('lambda_arn %s is not a Lambda function ARN', coalesce(quote_literal(lambda_arn), 'NULL')),
            'expected arn:aws:lambda:<region>:<account>:function:<name>');
    END IF;
    IF aws_region IS NULL OR aws_region !~ '^[a-z]{2}(-[a-z]+)+-[0-9]+$' THEN
        PERFORM s3vl._raise('invalid_argument',
            format('aws_region %s is not an AWS region name', coalesce(quote_literal(aws_region), 'NULL')));
    END IF;
    arn_region := split_part(lambda_arn, ':', 4);
    IF arn_region <> aws_region THEN
        PERFORM s3vl._raise('invalid_argument',
            format('aws_region %s conflicts with the region of the Lambda ARN (%s)', aws_region, arn_region));
    END IF;
    IF timeout_seconds IS NULL OR timeout_seconds NOT BETWEEN 1 AND 900 THEN
        PERFORM s3vl._raise('invalid_argument',
            format('timeout_seconds must be between 1 and 900, got %s', coalesce(timeout_seconds::text, 'NULL')));
    END IF;
    INSERT INTO s3vl.config AS c (singleton, lambda_arn, aws_region, timeout_seconds, registered_indexes_only,
                                  updated_at, updated_by)
    VALUES (true, configure.lambda_arn, configure.aws_region, configure.timeout_seconds,
            coalesce(configure.registered_indexes_only, false), now(), session_user)
    ON CONFLICT (singleton) DO UPDATE SET
        lambda_arn = EXCLUDED.lambda_arn, aws_region = EXCLUDED.aws_region,
        timeout_seconds = EXCLUDED.timeout_seconds, registered_indexes_only = EXCLUDED.registered_indexes_only,
        updated_at = now(), updated_by = EXCLUDED.updated_by;
    SELECT * INTO v FROM s3vl.validate_config();
    IF v.is_valid THEN
        RAISE NOTICE 's3vl: query Lambda % configured and reachable (% ms)', lambda_arn, v.response_time_ms;
    ELSE
        RAISE WARNING 's3vl: query Lambda % configured, but it cannot be used yet: %', lambda_arn, v.error_message
            USING HINT = 'Fix it, then SELECT * FROM s3vl.validate_config().';
    END IF;
    RETURN true;
END
$$;

DROP FUNCTION IF EXISTS s3vl.get_config();  -- its columns grew (registered_indexes_only)
CREATE FUNCTION s3vl.get_config()
RETURNS TABLE (lambda_arn text, aws_region text, timeout_seconds integer, registered_indexes_only boolean,
               updated_at timestamptz, updated_by text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.lambda_arn, c.aws_region, c.timeout_seconds, c.registered_indexes_only, c.updated_at, c.updated_by
    FROM s3vl.config c
$$;

-- Can the query Lambda be invoked and does it answer as the s3vl query Lambda? Never raises.
CREATE OR REPLACE FUNCTION s3vl.validate_config()
RETURNS TABLE (is_valid boolean, lambda_arn text, aws_region text, error_message text, response_time_ms integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cfg record;
    started timestamptz;
    result jsonb;
    msg text;
    state text;
BEGIN
    BEGIN
        SELECT c.lambda_arn, c.aws_region INTO cfg FROM s3vl.config c;
        IF NOT FOUND THEN
            RETURN QUERY SELECT false, NULL::text, NULL::text,
                'no query Lambda is configured: run SELECT s3vl.configure(lambda_arn, aws_region)'::text, NULL::integer;
            RETURN;
        END IF;
        started := clock_timestamp();
        result := s3vl._invoke('ping');
        IF result ->> 'status' IS DISTINCT FROM 'available' THEN
            RETURN QUERY SELECT false, cfg.lambda_arn, cfg.aws_region,
                'the function answered, but not as the s3vl query Lambda'::text,
                (extract(epoch FROM clock_timestamp() - started) * 1000)::integer;
            RETURN;
        END IF;
        RETURN QUERY SELECT true, cfg.lambda_arn, cfg.aws_region, NULL::text,
            (extract(epoch FROM clock_timestamp() - started) * 1000)::integer;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
        RETURN QUERY SELECT false, cfg.lambda_arn, cfg.aws_region, format('%s (SQLSTATE %s)', msg, state),
            CASE WHEN started IS NULL THEN NULL
                 ELSE (extract(epoch FROM clock_timestamp() - started) * 1000)::integer END;
    END;
END
$$;

COMMENT ON FUNCTION s3vl.configure(text, text, integer, boolean) IS
    'Set the query Lambda (ARN, region, per-call timeout, registered indexes only?); checks it can be reached.';
COMMENT ON FUNCTION s3vl.get_config() IS 'The configured query Lambda.';
COMMENT ON FUNCTION s3vl.validate_config() IS 'One row: is the query Lambda configured, reachable and answering? Never raises.';
