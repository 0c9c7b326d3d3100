-- Query interface state: the Lambda configuration and the index registry.
-- (Functions and comments on functions live in sql/idempotent/1xx-*.sql, grants in 900-grants.sql.)

-- Which query Lambda the s3vl functions invoke (aws_lambda.invoke). One row at most.
-- No credentials: Aurora invokes Lambda with the IAM role associated with the cluster.
CREATE TABLE s3vl.config (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    lambda_arn      text NOT NULL
        CHECK (lambda_arn ~ '^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?$'),
    aws_region      text NOT NULL CHECK (aws_region ~ '^[a-z]{2}(-[a-z]+)+-[0-9]+$'),
    timeout_seconds integer NOT NULL DEFAULT 30 CHECK (timeout_seconds BETWEEN 1 AND 900),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text NOT NULL DEFAULT current_user
);
COMMENT ON TABLE s3vl.config IS 'The query Lambda s3vl invokes (set with s3vl.configure); at most one row.';
COMMENT ON COLUMN s3vl.config.timeout_seconds IS 'Upper bound on one Lambda call (aws_lambda.request_timeout_ms during s3vl calls).';

-- Registered S3 Vectors indexes, addressed by a friendly name (contract: docs/internals.md).
-- dimension / distance_metric / searchable_keys come from GetIndex at registration;
-- embedding_model is the Bedrock model that produced the vectors (query_text embeds with it).
CREATE TABLE s3vl.indexes (
    name                text PRIMARY KEY
        CHECK (name ~ '^[A-Za-z][A-Za-z0-9_.-]*$' AND length(name) BETWEEN 2 AND 64),
    index_arn           text NOT NULL UNIQUE,
    region              text NOT NULL,
    account_id          text NOT NULL,
    bucket_name         text NOT NULL,
    index_name          text NOT NULL,
    dimension           integer CHECK (dimension BETWEEN 1 AND 4096),
    distance_metric     text CHECK (distance_metric IN ('cosine', 'euclidean')),
    embedding_model     text,
    searchable_keys     text[] NOT NULL DEFAULT '{}',
    non_filterable_keys text[] NOT NULL DEFAULT '{}',
    description         text,
    registered_at       timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE s3vl.indexes IS 'S3 Vectors indexes registered with s3vl.register_index (name -> ARN, dimension, metric, model).';
COMMENT ON COLUMN s3vl.indexes.searchable_keys IS 'Metadata keys with full-text search (hybrid query_text uses them).';
