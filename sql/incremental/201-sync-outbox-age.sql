-- The oldest leasable change across syncs, found by an index scan instead of a sort of every
-- pending row (s3vl.lease picks the sync whose change waits longest).
CREATE INDEX outbox_pending_age_idx ON s3vl.outbox (enqueued_at) WHERE status = 'pending';
