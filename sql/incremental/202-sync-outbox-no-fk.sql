-- Cheaper enqueues for trigger capture, which runs in the writers' own transactions:
-- * the outbox no longer checks its sync with a foreign key: the check ran once per enqueued key
--   (an RI trigger per outbox row, with a FOR KEY SHARE lock on the one s3vl.syncs row that every
--   concurrent writer shared), about half of what capture cost a bulk write. The cascade it gave
--   (a deleted or renamed sync takes its outbox rows along) is the trigger s3vl._syncs_cascade
--   on s3vl.syncs (sql/idempotent/200-sync-sql.sql); s3vl.lease never leases rows of a missing sync.
-- * the age index of 201 goes: s3vl.lease finds the oldest change per sync with
--   outbox_pending_idx instead, so each enqueued key maintains one index less.
ALTER TABLE s3vl.outbox DROP CONSTRAINT IF EXISTS outbox_sync_name_fkey;
DROP INDEX IF EXISTS s3vl.outbox_pending_age_idx;
