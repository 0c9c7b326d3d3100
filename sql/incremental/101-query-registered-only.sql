-- Hardening switch: when true, query functions accept only registered indexes (a raw index ARN
-- must be registered first), so admins decide which indexes readers can reach through the Lambda.
ALTER TABLE s3vl.config ADD COLUMN IF NOT EXISTS registered_indexes_only boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN s3vl.config.registered_indexes_only IS
    'Only registered indexes may be queried (set with s3vl.configure(..., registered_indexes_only => true)).';
