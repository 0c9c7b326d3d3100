"""List a whole S3 Vectors index into a PostgreSQL temporary table, without holding it in memory.

ListVectors is called for every segment (``segmentCount`` up to 16, one thread per segment),
each paging with ``nextToken`` to its end (a rolling run lists only some of the 16 segments).
Pages flow through a small bounded queue to the one thread that owns the database connection,
which streams them into the table with COPY. So at
any moment Python holds at most ``queue_pages + segments`` pages (of <= 1000 vectors), whatever
the size of the index; the listing itself lives in PostgreSQL, where SQL joins it with the source.

A temporary table is per session, so it needs exactly one writer connection (the run's
:class:`Database`); the HTTP calls are the slow part and run in parallel. Any error in any segment
stops every segment and is raised.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from sync.aws.retry import RetryPolicy
from sync.datapath.contract import metadata_hash
from sync.db.connection import Database
from sync.db.queries import query

log = structlog.get_logger(__name__)

#: ListVectors limits (botocore service model): segmentCount 1..16, maxResults 1..1000.
MAX_SEGMENTS = 16
MAX_PAGE_SIZE = 1000

#: One listed vector: key, s3vl_id, s3vl_ev, s3vl_hash, s3vl_chunk, segment, metadata hash.
ScanRow = tuple[str, str | None, str | None, str | None, int | None, int, str]


class PageLister(Protocol):
    """One ListVectors call: the rows of one page of one segment and the next token."""

    def __call__(
        self, segment: int, segments: int, token: str | None
    ) -> tuple[Sequence[Mapping[str, Any]], str | None]: ...


@dataclass
class ScanStats:
    """What a scan listed: vectors and pages in total and per segment."""

    segments: int
    vectors: int = 0
    pages: int = 0
    seconds: float = 0.0
    per_segment: list[int] = field(default_factory=list)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _chunk(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def to_row(vector: Mapping[str, Any], segment: int) -> ScanRow:
    """The scan row of one ListVectors entry; metadata values that are not ours become NULL.

    The metadata hash is the worker's :func:`~sync.datapath.contract.metadata_hash` of what the
    vector carries (its declared columns, and whether it stores its text), so SQL can compare it
    with the hash the worker recorded in ``s3vl.sync_state`` (metadata drift).
    """
    meta = vector.get("metadata") or {}
    if not isinstance(meta, Mapping):
        meta = {}
    declared = {k: v for k, v in meta.items() if not str(k).startswith("s3vl_")}
    return (
        str(vector["key"]),
        _text(meta.get("s3vl_id")),
        _text(meta.get("s3vl_ev")),
        _text(meta.get("s3vl_hash")),
        _chunk(meta.get("s3vl_chunk")),
        segment,
        metadata_hash(declared, "s3vl_text" in meta),
    )


def boto3_lister(
    client: Any, index_arn: str, page_size: int = MAX_PAGE_SIZE, policy: RetryPolicy | None = None
) -> PageLister:
    """A :class:`PageLister` over a boto3 ``s3vectors`` client (thread-safe: boto3 clients are).

    Throttling and 5xx are retried with the shared policy (:mod:`sync.aws`); a page is retried
    with the same token, so a retry never skips or repeats vectors.
    """
    retry = policy or RetryPolicy()
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")

    def list_page(
        segment: int, segments: int, token: str | None
    ) -> tuple[Sequence[Mapping[str, Any]], str | None]:
        kwargs: dict[str, Any] = {
            "indexArn": index_arn,
            "maxResults": page_size,
            "segmentCount": segments,
            "segmentIndex": segment,
            "returnMetadata": True,
            "returnData": False,
        }
        if token:
            kwargs["nextToken"] = token
        resp = retry.call("s3vectors ListVectors", lambda: client.list_vectors(**kwargs))
        return resp.get("vectors", []), resp.get("nextToken") or None

    return list_page


class _Done:
    """Sentinel a segment thread puts when it reached its last page."""

    def __init__(self, segment: int, vectors: int) -> None:
        self.segment = segment
        self.vectors = vectors


class _Failed:
    def __init__(self, segment: int, exc: BaseException) -> None:
        self.segment = segment
        self.exc = exc


_Item = list[ScanRow] | _Done | _Failed


def iter_pages(
    lister: PageLister, segments: int, queue_pages: int = 32, only: Sequence[int] | None = None
) -> Generator[tuple[int, list[ScanRow]], None, None]:
    """Yield ``(segment, rows)`` pages from all segments (or ``only`` these) listed in parallel threads.

    Memory is bounded by the queue (``queue_pages`` pages) plus one page in flight per thread.
    Closing the iterator early (or an error in a segment) stops all threads.
    """
    if not 1 <= segments <= MAX_SEGMENTS:
        raise ValueError(f"segments must be 1..{MAX_SEGMENTS}")
    listed = list(range(segments)) if only is None else list(only)
    if not listed or any(not 0 <= s < segments for s in listed):
        raise ValueError(f"segments to list must be within 0..{segments - 1}")
    q: queue.Queue[_Item] = queue.Queue(maxsize=queue_pages)
    stop = threading.Event()

    def put(item: _Item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(segment: int) -> None:
        token: str | None = None
        count = 0
        try:
            while not stop.is_set():
                vectors, token = lister(segment, segments, token)
                rows = [to_row(v, segment) for v in vectors]
                count += len(rows)
                if rows and not put(rows):
                    return
                if token is None:
                    put(_Done(segment, count))
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failed(segment, exc))

    threads = [threading.Thread(target=run, args=(s,), name=f"s3vl-scan-{s}", daemon=True) for s in listed]
    for t in threads:
        t.start()
    done = 0
    try:
        while done < len(listed):
            item = q.get()
            if isinstance(item, _Done):
                done += 1
                yield item.segment, []
            elif isinstance(item, _Failed):
                raise item.exc
            else:
                yield item[0][5], item
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)


def create_scan_table(db: Database) -> None:
    """(Re)create the session's temporary scan table ``s3vl_reconcile_scan``."""
    db.execute("scan_drop")
    db.execute("scan_create")


def scan_into(
    db: Database,
    lister: PageLister,
    segments: int = MAX_SEGMENTS,
    progress: Callable[[int], None] | None = None,
    queue_pages: int = 32,
    rows_per_statement: int = 200_000,
    only: Sequence[int] | None = None,
) -> ScanStats:
    """Stream every vector of the index (of segments ``only``) into the scan table with COPY.

    ``progress`` is called with the number of vectors of each page as it is written. The COPY
    is ended and restarted every ``rows_per_statement`` rows, so that (on an autocommit
    connection) no transaction stays open for the whole scan of a large index, holding back
    VACUUM on the database.
    """
    stats = ScanStats(segments=segments, per_segment=[0] * segments)
    started = time.monotonic()
    pages = iter_pages(lister, segments, queue_pages, only)
    with contextlib.closing(pages), db.cursor("reconcile scan") as cur, contextlib.ExitStack() as stack:
        copy: Any = None  # the COPY in progress (psycopg's)
        in_statement = 0
        for segment, rows in pages:
            if not rows:
                continue
            if copy is None:
                copy = stack.enter_context(cur.copy(query("scan_copy")))
            for row in rows:
                copy.write_row(row)
            in_statement += len(rows)
            stats.pages += 1
            stats.vectors += len(rows)
            stats.per_segment[segment] += len(rows)
            if progress is not None:
                progress(len(rows))
            if in_statement >= rows_per_statement:
                stack.close()  # ends this COPY (its transaction commits)
                copy, in_statement = None, 0
    db.execute("scan_analyze")
    stats.seconds = time.monotonic() - started
    log.info("reconcile.scanned", vectors=stats.vectors, pages=stats.pages, segments=segments,
             seconds=round(stats.seconds, 2))
    return stats
