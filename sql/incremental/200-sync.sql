-- The sync worker's state: sync definitions, the outbox of changed keys, the per-key state of
-- what is in the index, and the reconcile results the status view shows.
-- Contract for other parts: docs/internals.md (kept in step with this file).
-- Functions and views are in sql/idempotent/2xx-sync-*.sql, grants in 900-grants.sql.

-- One row per sync: which table feeds which registered index, and how rows become vectors.
CREATE TABLE s3vl.syncs (
    name              text PRIMARY KEY
                      CHECK (name ~ '^[a-z_][a-z0-9_]{0,39}$'),
    source            regclass NOT NULL,
    key_columns       text[] NOT NULL CHECK (cardinality(key_columns) >= 1),
    -- REFERENCES s3vl.indexes (name): added by sql/idempotent/200-sync-sql.sql once the registry
    -- (sql/*/100-*.sql, the query interface) exists, so the two parts install in any state.
    index_name        text NOT NULL,
    text_expression   text NOT NULL,
    metadata_columns  text[] NOT NULL DEFAULT '{}',
    -- every column the sync reads (keys, metadata, the columns the text expression uses):
    -- an UPDATE that changes none of them enqueues nothing.
    read_columns      text[] NOT NULL,
    embedding_model   text NOT NULL,
    dimensions        int NOT NULL CHECK (dimensions BETWEEN 1 AND 4096),
    normalize_vectors         boolean NOT NULL DEFAULT true,
    capture           text NOT NULL CHECK (capture IN ('trigger', 'logical')),
    chunk_size        int CHECK (chunk_size IS NULL OR chunk_size >= 100),
    chunk_overlap     int NOT NULL DEFAULT 0 CHECK (chunk_overlap >= 0),
    store_text        boolean NOT NULL DEFAULT false,
    label             text,
    embedding_version text NOT NULL,
    max_attempts      int NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    last_success_at   timestamptz,
    CHECK (chunk_size IS NULL OR chunk_overlap < chunk_size)
);
COMMENT ON TABLE s3vl.syncs IS 'Sync definitions (s3vl.create_sync): source table -> registered S3 Vectors index.';

-- One row per (sync, key) with a change not yet applied. Repeated changes coalesce into the
-- same row and bump its version; a worker completes a row only if the version it leased is
-- still the current one.
CREATE TABLE s3vl.outbox (
    sync_name   text NOT NULL REFERENCES s3vl.syncs (name) ON DELETE CASCADE ON UPDATE CASCADE,
    key         text NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    enqueued_at timestamptz NOT NULL DEFAULT now(),   -- oldest change not yet applied
    attempts    int NOT NULL DEFAULT 0,               -- failed attempts since the last change
    lease_until timestamptz,
    leased_by   text,
    last_error  text,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'failed')),
    PRIMARY KEY (sync_name, key)
);
CREATE INDEX outbox_pending_idx ON s3vl.outbox (sync_name, enqueued_at) WHERE status = 'pending';
COMMENT ON TABLE s3vl.outbox IS 'Keys whose rows changed and must be re-synced (coalesced, versioned, leased).';

-- One row per (sync, key) that has vectors in the index. content_hash NULL means "unknown":
-- the next pass re-embeds the row (set when two workers raced on a key).
CREATE TABLE s3vl.sync_state (
    sync_name         text NOT NULL REFERENCES s3vl.syncs (name) ON DELETE CASCADE ON UPDATE CASCADE,
    key               text NOT NULL,
    content_hash      text,
    metadata_hash     text,
    embedding_version text,
    chunk_count       int NOT NULL DEFAULT 1,   -- vectors the row has in the index
    chunked           boolean NOT NULL DEFAULT false,  -- keys are <key>#0..n-1 (else one vector <key>)
    synced_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sync_name, key)
);
COMMENT ON TABLE s3vl.sync_state IS 'What the index holds per source key (hashes, embedding version, chunks).';

-- Reconcile results (written by s3vl reconcile, sql/3xx); here so that s3vl.sync_status can show them.
CREATE TABLE s3vl.reconcile_runs (
    id          bigserial PRIMARY KEY,
    sync_name   text NOT NULL REFERENCES s3vl.syncs (name) ON DELETE CASCADE ON UPDATE CASCADE,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    applied     boolean NOT NULL DEFAULT false,
    report      jsonb
);
CREATE INDEX reconcile_runs_sync_idx ON s3vl.reconcile_runs (sync_name, started_at DESC);
