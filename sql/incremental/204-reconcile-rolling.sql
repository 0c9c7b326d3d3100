-- Rolling reconcile (s3vl reconcile --segments-per-run K, sync/ops/reconcile/rolling.py): a run
-- lists K of the index's 16 ListVectors segments, so it needs what the other segments held when
-- they were last listed, and where the cycle stands.

-- What each segment held when it was last listed (key, the s3vl_ metadata and the hash of the
-- declared metadata): refreshed one segment at a time, read by the run that judges a key. `id` is
-- the source key the vector belongs to (its s3vl_id, else derived from the vector key). A key that
-- vanished from its segment stays as a tombstone while s3vl knows its source key, so that each
-- cycle judges a missing key once, when its segment is listed.
CREATE TABLE s3vl.reconcile_snapshot (
    sync_name text NOT NULL REFERENCES s3vl.syncs (name) ON DELETE CASCADE ON UPDATE CASCADE,
    key       text NOT NULL,
    seg       smallint NOT NULL,
    id        text NOT NULL,
    sid       text,
    ev        text,
    hash      text,
    chunk     int,
    mhash     text,
    gone      boolean NOT NULL DEFAULT false,  -- a tombstone: listed before, not in the last listing
    PRIMARY KEY (sync_name, key)
);
CREATE INDEX reconcile_snapshot_seg_idx ON s3vl.reconcile_snapshot (sync_name, seg);
CREATE INDEX reconcile_snapshot_id_idx ON s3vl.reconcile_snapshot (sync_name, id);
COMMENT ON TABLE s3vl.reconcile_snapshot IS 'Rolling reconcile: each ListVectors segment as it was last listed.';

-- Where a sync's rolling cycle stands. listed_at[n + 1] is when segment n was last listed (NULL:
-- never, so the snapshot is not complete yet); found adds up what this cycle's runs found;
-- last_cycle is the summary of the last complete cycle (shown by s3vl.sync_status).
CREATE TABLE s3vl.reconcile_cycles (
    sync_name    text PRIMARY KEY REFERENCES s3vl.syncs (name) ON DELETE CASCADE ON UPDATE CASCADE,
    cycle        int NOT NULL DEFAULT 1,
    next_segment smallint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    listed_at    timestamptz[] NOT NULL DEFAULT array_fill(NULL::timestamptz, ARRAY[16]),
    found        jsonb NOT NULL DEFAULT '{}',
    last_cycle   jsonb
);
COMMENT ON TABLE s3vl.reconcile_cycles IS 'Rolling reconcile: per sync, the current cycle and the last complete one.';
