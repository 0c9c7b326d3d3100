"""capture => 'logical': the wal2json slot reader feeds the same outbox and pipeline."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import psycopg.sql
import pytest

from sync.datapath.capture import LogicalCapture
from sync.db.connection import Database
from tests.support.endpoint import EndpointHandle
from tests.support.syncenv import SyncEnv, products_env

pytestmark = pytest.mark.usefixtures("aws_env")


def _slot(env: SyncEnv) -> tuple[str, bool]:
    row = env.sql("SELECT s3vl.capture_slot_name(), EXISTS (SELECT FROM pg_replication_slots "
                  "WHERE slot_name = s3vl.capture_slot_name())")[0]
    return str(row[0]), bool(row[1])


@pytest.fixture
def env(db_url: str, endpoint: EndpointHandle) -> Iterator[SyncEnv]:
    # the test cluster runs with synchronous_commit=off, and logical decoding only sees flushed
    # WAL: writers here commit synchronously so that a poll right after a write sees it
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(
            psycopg.sql.Identifier(db_url.rsplit("/", 1)[1])))
    e = products_env(db_url, endpoint, rows=20, capture="logical")
    try:
        yield e
    finally:  # a slot keeps its database from being dropped
        slot, exists = _slot(e)
        if exists:
            e.sql("SELECT pg_drop_replication_slot(%s)", (slot,))


def test_logical_capture_end_to_end(env: SyncEnv) -> None:
    assert env.sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'products'::regclass")[0][0] == 0
    env.drain()  # creates the slot, resyncs, processes the backfill
    assert _slot(env)[1]
    lag = env.sql("SELECT capture, capture_lag_bytes FROM s3vl.sync_status")[0]
    assert lag[0] == "logical"
    assert lag[1] is not None
    env.assert_converged()

    env.sql("INSERT INTO products (id, name) VALUES (100, 'logical insert')")
    env.sql("UPDATE products SET name = 'logical update' WHERE id = 1")
    env.sql("UPDATE products SET id = 200 WHERE id = 2")
    env.sql("DELETE FROM products WHERE id IN (3, 4)")
    env.drain()
    env.assert_converged()
    assert "2" not in env.index()
    assert "200" in env.index()

    env.sql("TRUNCATE products")
    env.sql("INSERT INTO products (id, name) VALUES (7, 'after truncate')")
    env.drain()
    env.assert_converged()
    assert set(env.index()) == {"7"}

    # the slot is consumed: a poll with nothing new enqueues nothing
    capture = LogicalCapture(Database(env.db_url))
    try:
        assert capture.poll().enqueued == 0
        # dropping the last logical sync drops the slot (it would hold WAL back)
        env.sql("SELECT s3vl.drop_sync('products')")
        capture.poll()
    finally:
        capture.close()
    assert not _slot(env)[1]


def test_writes_before_the_slot_existed_are_not_lost(env: SyncEnv) -> None:
    env.sql("UPDATE products SET name = 'changed before any worker ran' WHERE id = 5")
    env.sql("DELETE FROM products WHERE id = 6")
    env.drain()
    env.assert_converged()


def test_logical_capture_validation(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, "
                     "dimension) VALUES ('ix', 'arn:aws:s3vectors:us-west-2:000000000000:bucket/b/index/ix', "
                     "'us-west-2', '000000000000', 'b', 'ix', 256)")
        conn.execute("CREATE TABLE u (id int PRIMARY KEY, code text NOT NULL UNIQUE, body text)")
        with pytest.raises(psycopg.Error, match="needs REPLICA IDENTITY FULL") as err:
            conn.execute("SELECT s3vl.create_sync('u', 'u', 'ix', 'body', key_columns => ARRAY['code'], "
                         "capture => 'logical')")
        assert err.value.diag.message_hint == "ALTER TABLE public.u REPLICA IDENTITY FULL"
        conn.execute("ALTER TABLE u REPLICA IDENTITY FULL")
        conn.execute("SELECT s3vl.create_sync('u', 'u', 'ix', 'body', key_columns => ARRAY['code'], "
                     "capture => 'logical')")
