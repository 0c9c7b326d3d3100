-- Local stand-ins for Aurora PostgreSQL's `aws_commons` and `aws_lambda` extensions.
--
-- Applied ONLY by `s3vl dev up` (sync.schema.install_local_shims) into the private local cluster;
-- never by `s3vl install-sql` into a real Aurora, where `CREATE EXTENSION aws_lambda CASCADE`
-- provides the real thing. The signatures are Aurora's, parameter for parameter (AWS docs:
-- "AWS Lambda function and parameter reference", Aurora User Guide), so the s3vl schema above
-- them runs unchanged on both:
--   aws_commons._lambda_function_arn_1 (function_name text, region text)
--   aws_commons.create_lambda_function_arn(function_name text, region text DEFAULT NULL)
--   aws_lambda.invoke(function_name text | aws_commons._lambda_function_arn_1,
--                     payload json | jsonb, [region text,] invocation_type, log_type, context,
--                     qualifier, OUT status_code int, OUT payload json | jsonb,
--                     OUT executed_version text, OUT log_result text)      -- 4 overloads
-- Instead of AWS they call the local endpoint's Lambda Invoke API
-- (POST /2015-03-31/functions/{name}/invocations) over plain HTTP.
--
-- Settings (the same names as Aurora's parameters):
--   aws_lambda.endpoint_override   where Lambda is, e.g. 'http://127.0.0.1:45660' (Aurora's name;
--                                  host[:port] without a scheme means http). Also accepted, when
--                                  the former is unset: aws_lambda.endpoint_url (what `s3vl dev up`
--                                  sets with ALTER DATABASE).
--   aws_lambda.connect_timeout_ms  default 1000 (Aurora's default), 1..900000
--   aws_lambda.request_timeout_ms  default 3000 (Aurora's default), 1..900000
-- Failures use Aurora's texts: "invoke API failed" (the Invoke API call itself failed: endpoint
-- unreachable, timeout, or an API error such as ResourceNotFoundException) with DETAIL
-- "AWS Lambda client returned '<reason>'.", and "lambda invocation failed" with DETAIL
-- '"<function>" returned error "Unhandled", details: "<payload>".' when the function raised.
-- No credentials are stored or sent: the local endpoint does not check signatures.

CREATE EXTENSION IF NOT EXISTS plpython3u;
CREATE SCHEMA IF NOT EXISTS aws_commons;
CREATE SCHEMA IF NOT EXISTS aws_lambda;
COMMENT ON SCHEMA aws_commons IS 'Local stand-in for Aurora''s aws_commons extension (s3vl dev stack only).';
COMMENT ON SCHEMA aws_lambda IS 'Local stand-in for Aurora''s aws_lambda extension (s3vl dev stack only).';

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'aws_commons' AND t.typname = '_lambda_function_arn_1'
    ) THEN
        CREATE TYPE aws_commons._lambda_function_arn_1 AS (function_name text, region text);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION aws_commons.create_lambda_function_arn(
    function_name text,
    region text DEFAULT NULL
) RETURNS aws_commons._lambda_function_arn_1
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ROW($1, $2)::aws_commons._lambda_function_arn_1 $$;

-- The one implementation behind the four overloads. Payloads travel as text so that JSON and
-- JSONB callers share it; the overloads cast.
CREATE OR REPLACE FUNCTION aws_lambda._invoke_local(
    fn_name text,
    fn_payload text,
    fn_region text,
    invocation_type text,
    log_type text,
    fn_context text,
    qualifier text,
    OUT status_code integer,
    OUT payload text,
    OUT executed_version text,
    OUT log_result text,
    OUT error_message text,
    OUT error_detail text,
    OUT error_hint text
)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp
AS $py$
import base64
import http.client
import json
import socket
import time
import urllib.parse

def setting(name, default):
    rows = plpy.execute(
        "SELECT pg_catalog.current_setting(%s, true) AS v" % plpy.quote_literal(name))
    value = rows[0]["v"] if rows else None
    return default if value is None or value == "" else value

class Failed(Exception):
    """Raised to stop; turned into the error columns the SQL wrappers raise from."""

    def __init__(self, message, detail=None, hint=None):
        super().__init__(message)
        self.fields = {"error_message": message, "error_detail": detail, "error_hint": hint}

def fail(message, detail=None, hint=None):
    raise Failed(message, detail, hint)

def api_failed(reason, hint=None):
    fail("invoke API failed", "AWS Lambda client returned '%s'." % reason, hint)

def timeout_ms(name, default):
    raw = setting(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        fail('invalid value for parameter "%s": "%s"' % (name, raw))
    if not 1 <= value <= 900000:
        fail('%d is outside the valid range for parameter "%s" (1 .. 900000)' % (value, name))
    return value / 1000.0

def run():
    if fn_name is None or fn_name.strip() == "":
        fail("invoke API failed", "AWS Lambda client returned 'function name is required'.")
    if invocation_type not in ("RequestResponse", "Event", "DryRun"):
        fail("invoke API failed",
             "AWS Lambda client returned 'invalid invocation type: %s'." % invocation_type,
             "invocation_type is case-sensitive: RequestResponse, Event or DryRun.")
    if log_type not in ("None", "Tail"):
        fail("invoke API failed",
             "AWS Lambda client returned 'invalid log type: %s'." % log_type,
             "log_type is case-sensitive: None or Tail.")

    # Region: the full ARN's region wins; a different explicit region is an error (as on Aurora).
    parts = fn_name.split(":")
    if fn_name.startswith("arn:") and len(parts) >= 7:
        arn_region = parts[3]
        if fn_region and fn_region != arn_region:
            fail("invoke API failed",
                 "AWS Lambda client returned 'region %s does not match the region of %s'."
                 % (fn_region, fn_name))

    endpoint = setting("aws_lambda.endpoint_override", "") or setting("aws_lambda.endpoint_url", "")
    if not endpoint:
        api_failed("Unable to connect to endpoint",
                   "The local aws_lambda shim needs aws_lambda.endpoint_override "
                   "(s3vl dev up sets it to the local endpoint's URL).")
    if "://" not in endpoint:
        endpoint = "http://" + endpoint
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        api_failed("Unable to connect to endpoint",
                   "aws_lambda.endpoint_override must look like http://127.0.0.1:45660")
    connect_timeout = timeout_ms("aws_lambda.connect_timeout_ms", 1000)
    request_timeout = timeout_ms("aws_lambda.request_timeout_ms", 3000)

    path = "%s/2015-03-31/functions/%s/invocations" % (
        url.path.rstrip("/"), urllib.parse.quote(fn_name, safe=""))
    if qualifier:
        path += "?Qualifier=" + urllib.parse.quote(qualifier, safe="")
    headers = {
        "Content-Type": "application/json",
        "X-Amz-Invocation-Type": invocation_type,
        "X-Amz-Log-Type": log_type,
        "User-Agent": "s3vl-local-aws-lambda-shim/1",
    }
    if fn_context is not None:
        headers["X-Amz-Client-Context"] = base64.b64encode(fn_context.encode("utf-8")).decode("ascii")
    body = (fn_payload if fn_payload is not None else "{}").encode("utf-8")

    conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(url.hostname, url.port, timeout=connect_timeout)
    try:
        try:
            conn.connect()
        except socket.timeout:
            api_failed("Connection timed out after %d ms" % int(connect_timeout * 1000))
        except OSError:
            api_failed("Unable to connect to endpoint")
        # Connected: from here on, waiting for the answer is bounded by request_timeout_ms.
        conn.sock.settimeout(request_timeout)
        deadline = time.monotonic() + request_timeout
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except socket.timeout:
            api_failed("Request timed out after %d ms" % int(request_timeout * 1000))
        except (OSError, http.client.HTTPException) as exc:
            api_failed("Unable to read response: %s" % exc.__class__.__name__)
        if time.monotonic() > deadline:
            api_failed("Request timed out after %d ms" % int(request_timeout * 1000))
    finally:
        conn.close()

    text = raw.decode("utf-8", errors="replace")
    if resp.status >= 300:
        # An Invoke API error (ResourceNotFoundException, TooManyRequestsException, ...).
        error_type = (resp.getheader("x-amzn-ErrorType") or "").split(":")[0]
        message = ""
        try:
            doc = json.loads(text)
            error_type = error_type or doc.get("Type") or doc.get("__type") or ""
            message = doc.get("message") or doc.get("Message") or ""
        except (ValueError, AttributeError):
            message = text[:200]
        reason = ("%s: %s" % (error_type, message)) if error_type else (message or "HTTP %d" % resp.status)
        api_failed(reason)

    function_error = resp.getheader("X-Amz-Function-Error")
    if function_error:
        fail("lambda invocation failed",
             '"%s" returned error "%s", details: "%s".' % (fn_name, function_error, text))

    status_code = resp.status
    executed_version = resp.getheader("X-Amz-Executed-Version")
    log_result = resp.getheader("X-Amz-Log-Result") if log_type == "Tail" else None
    if invocation_type != "RequestResponse" or text == "":
        payload = None
    else:
        try:
            json.loads(text)
        except ValueError:
            fail("lambda invocation failed",
                 '"%s" returned a payload that is not JSON: "%s".' % (fn_name, text[:200]))
        payload = text
    return {"status_code": status_code, "payload": payload,
            "executed_version": executed_version, "log_result": log_result}

try:
    out = run()
    out.update(error_message=None, error_detail=None, error_hint=None)
    return out
except Failed as failure:
    out = {"status_code": None, "payload": None, "executed_version": None, "log_result": None}
    out.update(failure.fields)
    return out
$py$;

-- Raises the failure _invoke_local reported, with Aurora's message text and no PL/Python prefix.
CREATE OR REPLACE FUNCTION aws_lambda._raise_on_error(message text, detail text, hint text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF message IS NULL THEN
        RETURN true;
    ELSIF hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE = message, DETAIL = coalesce(detail, '');
    ELSE
        RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE = message, DETAIL = coalesce(detail, ''), HINT = hint;
    END IF;
    RETURN true;
END
$$;

-- JSON, function name as text.
CREATE OR REPLACE FUNCTION aws_lambda.invoke(
    IN function_name text,
    IN payload json,
    IN region text DEFAULT NULL,
    IN invocation_type text DEFAULT 'RequestResponse',
    IN log_type text DEFAULT 'None',
    IN context json DEFAULT NULL,
    IN qualifier varchar(128) DEFAULT NULL,
    OUT status_code integer,
    OUT payload json,
    OUT executed_version text,
    OUT log_result text
)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.status_code, r.payload::json, r.executed_version, r.log_result
    FROM aws_lambda._invoke_local($1, $2::text, $3, $4, $5, $6::text, $7) AS r
    WHERE aws_lambda._raise_on_error(r.error_message, r.error_detail, r.error_hint)
$$;

-- JSON, function name as aws_commons._lambda_function_arn_1.
CREATE OR REPLACE FUNCTION aws_lambda.invoke(
    IN function_name aws_commons._lambda_function_arn_1,
    IN payload json,
    IN invocation_type text DEFAULT 'RequestResponse',
    IN log_type text DEFAULT 'None',
    IN context json DEFAULT NULL,
    IN qualifier varchar(128) DEFAULT NULL,
    OUT status_code integer,
    OUT payload json,
    OUT executed_version text,
    OUT log_result text
)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.status_code, r.payload::json, r.executed_version, r.log_result
    FROM aws_lambda._invoke_local(($1).function_name, $2::text, ($1).region, $3, $4, $5::text, $6) AS r
    WHERE aws_lambda._raise_on_error(r.error_message, r.error_detail, r.error_hint)
$$;

-- JSONB, function name as text.
CREATE OR REPLACE FUNCTION aws_lambda.invoke(
    IN function_name text,
    IN payload jsonb,
    IN region text DEFAULT NULL,
    IN invocation_type text DEFAULT 'RequestResponse',
    IN log_type text DEFAULT 'None',
    IN context jsonb DEFAULT NULL,
    IN qualifier varchar(128) DEFAULT NULL,
    OUT status_code integer,
    OUT payload jsonb,
    OUT executed_version text,
    OUT log_result text
)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.status_code, r.payload::jsonb, r.executed_version, r.log_result
    FROM aws_lambda._invoke_local($1, $2::text, $3, $4, $5, $6::text, $7) AS r
    WHERE aws_lambda._raise_on_error(r.error_message, r.error_detail, r.error_hint)
$$;

-- JSONB, function name as aws_commons._lambda_function_arn_1.
CREATE OR REPLACE FUNCTION aws_lambda.invoke(
    IN function_name aws_commons._lambda_function_arn_1,
    IN payload jsonb,
    IN invocation_type text DEFAULT 'RequestResponse',
    IN log_type text DEFAULT 'None',
    IN context jsonb DEFAULT NULL,
    IN qualifier varchar(128) DEFAULT NULL,
    OUT status_code integer,
    OUT payload jsonb,
    OUT executed_version text,
    OUT log_result text
)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.status_code, r.payload::jsonb, r.executed_version, r.log_result
    FROM aws_lambda._invoke_local(($1).function_name, $2::text, ($1).region, $3, $4, $5::text, $6) AS r
    WHERE aws_lambda._raise_on_error(r.error_message, r.error_detail, r.error_hint)
$$;

-- Like Aurora: only superusers (rds_superuser there) may invoke until granted explicitly.
REVOKE ALL ON SCHEMA aws_lambda FROM PUBLIC;
REVOKE ALL ON FUNCTION aws_lambda._invoke_local(text, text, text, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION aws_lambda._raise_on_error(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION aws_lambda.invoke(text, json, text, text, text, json, varchar) FROM PUBLIC;
REVOKE ALL ON FUNCTION aws_lambda.invoke(aws_commons._lambda_function_arn_1, json, text, text, json, varchar) FROM PUBLIC;
REVOKE ALL ON FUNCTION aws_lambda.invoke(text, jsonb, text, text, text, jsonb, varchar) FROM PUBLIC;
REVOKE ALL ON FUNCTION aws_lambda.invoke(aws_commons._lambda_function_arn_1, jsonb, text, text, jsonb, varchar) FROM PUBLIC;
GRANT USAGE ON SCHEMA aws_commons TO PUBLIC;
