"""Logical capture: the wal2json slot reader that feeds the outbox for ``capture => 'logical'`` syncs.

Trigger capture needs no code here (the triggers of ``sql/idempotent/220-sync-capture.sql`` write the
outbox in the writers' transactions). Logical capture moves that work out of the writers'
transactions: one replication slot per database, read by the worker between batches.

* The slot is created when the first logical sync appears, and every logical sync is then
  queued in full (``s3vl.resync``): together with the slot, that covers changes made before it.
* Each poll enqueues the keys of the changes since the slot's position (``s3vl.capture_logical``,
  one transaction) and only then consumes the slot up to the last commit it covered
  (``s3vl.capture_consume``). A crash in between reads the same changes again; the outbox
  coalesces them. Nothing is lost.
* When no logical sync remains the slot is dropped, so it does not hold WAL back.
One worker reads the slot at a time (an advisory lock); the others skip the poll.

The database role needs the REPLICATION attribute (Aurora: the ``rds_replication`` role) and
``wal_level = logical`` (Aurora: ``rds.logical_replication = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from sync.db.connection import Database
from sync.db.queries import query
from sync.errors import DatabaseError

log = structlog.get_logger(__name__)


@dataclass
class Poll:
    changes: int = 0
    enqueued: int = 0
    consumed: int = 0


class LogicalCapture:
    """Reads the capture slot into the outbox; a no-op while no sync uses logical capture."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def close(self) -> None:
        self.db.close()

    def poll(self, max_changes: int = 10_000) -> Poll:
        state = self.db.one("capture_state")
        assert state is not None
        slot, wanted, present = str(state["slot"]), bool(state["wanted"]), bool(state["present"])
        if not wanted:
            if present:
                self._drop(slot)
            return Poll()
        if not present:
            self._create(slot)
        result = Poll()
        with self.db.transaction("capture") as cur:
            locked = cur.execute(query("capture_lock"), {}).fetchone()
            if not (locked and locked["locked"]):
                return result  # another worker is reading the slot
            out = cur.execute(query("capture_poll"), {"max_changes": max_changes}).fetchone()
        assert out is not None
        result.changes, result.enqueued = int(out["changes"] or 0), int(out["enqueued"] or 0)
        if out["upto_lsn"] is not None:
            result.consumed = int(self.db.value("capture_consume", {"upto_lsn": out["upto_lsn"]}) or 0)
            log.info("capture.polled", slot=slot, changes=result.changes, enqueued=result.enqueued,
                     consumed=result.consumed)
        return result

    def _create(self, slot: str) -> None:
        try:
            self.db.execute("capture_create_slot", {"slot": slot})
        except DatabaseError as exc:
            if exc.sqlstate == "42710":  # duplicate_object: another worker made it (and queues the resync)
                return
            raise DatabaseError(f"cannot create the capture slot {slot}: {exc} (needs wal_level=logical, "
                                "the wal2json plugin and the REPLICATION attribute)", exc.sqlstate) from exc
        n = self.db.value("capture_resync")
        log.info("capture.slot_created", slot=slot, resynced=int(n or 0))

    def _drop(self, slot: str) -> None:
        try:
            self.db.execute("capture_drop_slot", {"slot": slot})
            log.info("capture.slot_dropped", slot=slot)
        except DatabaseError as exc:
            # 42704: already gone; 55006: being read right now (dropped on a later poll)
            if exc.sqlstate not in ("42704", "55006"):
                raise
