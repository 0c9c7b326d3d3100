"""Logical capture: the wal2json slot reader that feeds the outbox for ``capture => 'logical'`` syncs.

Trigger capture needs no code here (the triggers of ``sql/idempotent/200-sync.sql`` write the
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
from typing import Any

import psycopg
import structlog

from sync.errors import DatabaseError

log = structlog.get_logger(__name__)

_LOCK = 0x53_33_56_43  # "S3VC": one slot reader at a time


@dataclass
class Poll:
    changes: int = 0
    enqueued: int = 0
    consumed: int = 0


class LogicalCapture:
    """Reads the capture slot into the outbox; a no-op while no sync uses logical capture."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def poll(self, max_changes: int = 10_000) -> Poll:
        try:
            return self._poll(max_changes)
        except psycopg.OperationalError as exc:
            self.close()
            raise DatabaseError(f"database unavailable: {str(exc).strip()}") from exc

    def _poll(self, max_changes: int) -> Poll:
        conn = self._connection()
        row = conn.execute(
            "SELECT s3vl.capture_slot_name(), "
            "EXISTS (SELECT FROM s3vl.syncs WHERE capture = 'logical'), "
            "EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = s3vl.capture_slot_name())").fetchone()
        assert row is not None
        slot, wanted, exists = str(row[0]), bool(row[1]), bool(row[2])
        if not wanted:
            if exists:
                self._drop(conn, slot)
            return Poll()
        if not exists:
            self._create(conn, slot)
        result = Poll()
        with conn.transaction():
            locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK,)).fetchone()
            if not (locked and locked[0]):
                return result  # another worker is reading the slot
            out = conn.execute("SELECT changes, enqueued, upto_lsn FROM s3vl.capture_logical(%s)",
                               (max_changes,)).fetchone()
        assert out is not None
        result.changes, result.enqueued = int(out[0] or 0), int(out[1] or 0)
        if out[2] is not None:
            consumed = conn.execute("SELECT s3vl.capture_consume(%s)", (out[2],)).fetchone()
            result.consumed = int(consumed[0]) if consumed else 0
            log.info("capture.polled", slot=slot, changes=result.changes, enqueued=result.enqueued)
        return result

    def _create(self, conn: psycopg.Connection[Any], slot: str) -> None:
        try:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
        except psycopg.errors.DuplicateObject:
            return  # another worker made it (and queues the resync)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot create the capture slot {slot}: {str(exc).strip()} "
                                "(needs wal_level=logical, the wal2json plugin and the REPLICATION attribute)") from exc
        # changes before the slot existed are not in it: queue every logical sync in full
        n = conn.execute("SELECT coalesce(sum(s3vl.resync(name)), 0) FROM s3vl.syncs WHERE capture = 'logical'"
                         ).fetchone()
        log.info("capture.slot_created", slot=slot, resynced=int(n[0]) if n else 0)

    def _drop(self, conn: psycopg.Connection[Any], slot: str) -> None:
        try:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            log.info("capture.slot_dropped", slot=slot)
        except psycopg.errors.UndefinedObject:
            pass
        except psycopg.errors.ObjectInUse:
            pass  # being read right now; dropped on a later poll
