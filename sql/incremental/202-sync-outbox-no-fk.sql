-- The outbox no longer checks its sync with a foreign key: the check ran once per enqueued key
-- (an RI trigger per outbox row), about half of what trigger capture cost a bulk write. The
-- cascade it gave (a deleted or renamed sync takes its outbox rows along) is the trigger
-- s3vl._syncs_cascade on s3vl.syncs (sql/idempotent/200-sync.sql); enqueuers check the sync
-- once per statement instead (s3vl._sync, the generated capture functions).
ALTER TABLE s3vl.outbox DROP CONSTRAINT IF EXISTS outbox_sync_name_fkey;
