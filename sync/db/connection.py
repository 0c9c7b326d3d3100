"""The one way into the database: a connection per component, named queries, one error translation.

Every s3vl module that talks to PostgreSQL does it through a :class:`Database`: one autocommit
connection, opened on first use and opened again after it broke, running the named queries of
``sql/queries/*.sql`` (:mod:`sync.db.queries`). psycopg's errors are translated here and nowhere
else, into the classes of :mod:`sync.errors`:

* the connection failed or broke -> :class:`DatabaseUnavailableError` (worth retrying; the
  connection is closed so the next call reconnects);
* the database refused the statement -> :class:`DatabaseError` with its SQLSTATE, its primary
  message and its hint (never its PL/pgSQL CONTEXT lines, which are for developers); a missing
  ``s3vl`` object -> :class:`SchemaError` naming ``s3vl install-sql``; a missing privilege names
  the grants the README's security model lists.

Transactions are short and never span a network call: each call is its own transaction unless
the caller opens :meth:`Database.transaction` around a few statements.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from sync.db.queries import query
from sync.errors import DatabaseError, DatabaseUnavailableError, SchemaError

#: Seconds to wait for a connection when the URL does not say (libpq waits for the OS otherwise).
CONNECT_TIMEOUT = 10

Row = dict[str, Any]


def translate(exc: psycopg.Error, what: str = "") -> DatabaseError | SchemaError:
    """The s3vl error for a psycopg error (``what`` names the operation in the message)."""
    prefix = f"{what}: " if what else ""
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return DatabaseUnavailableError(f"{prefix}database unavailable: {_first_line(str(exc))}")
    diag = exc.diag
    message = (diag.message_primary or _first_line(str(exc))).strip()
    hint = f" (hint: {diag.message_hint.strip()})" if diag.message_hint else ""
    if isinstance(exc, psycopg.errors.UndefinedFunction | psycopg.errors.UndefinedTable
                  | psycopg.errors.InvalidSchemaName) and "s3vl" in message:
        return SchemaError(f"{prefix}{message}: the s3vl schema is missing or older than this s3vl; "
                           "run s3vl install-sql")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege) and not hint:
        hint = (" (hint: the login lacks a role s3vl's functions need: see README, Security model, "
                "for what each command's login needs, e.g. GRANT s3vl_worker TO <worker login>)")
    if isinstance(exc, psycopg.OperationalError):  # an answer with a SQLSTATE: admin shutdown, ...
        return DatabaseUnavailableError(f"{prefix}{message}{hint}", exc.sqlstate)
    return DatabaseError(f"{prefix}{message}{hint}", exc.sqlstate)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no answer"


def _with_timeout(conninfo: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    if "connect_timeout" in params:
        return conninfo
    return psycopg.conninfo.make_conninfo(conninfo, connect_timeout=CONNECT_TIMEOUT)


class Database:
    """One autocommit connection to the s3vl database, used by one component at a time."""

    def __init__(self, conninfo: str, *, application_name: str = "s3vl") -> None:
        self.conninfo = conninfo
        self.application_name = application_name
        self._conn: psycopg.Connection[Row] | None = None

    def connect(self) -> psycopg.Connection[Row]:
        """The open connection (opened now if there is none or it broke)."""
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(_with_timeout(self.conninfo), autocommit=True, row_factory=dict_row,
                                             application_name=self.application_name)
            except psycopg.Error as exc:
                raise translate(exc) from exc
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    @contextmanager
    def cursor(self, what: str = "") -> Iterator[psycopg.Cursor[Row]]:
        """A cursor; psycopg's errors leave it translated (and a broken connection closed)."""
        try:
            with self.connect().cursor() as cur:
                yield cur
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError) or (self._conn is not None and self._conn.broken):
                self.close()
            raise translate(exc, what) from exc

    @contextmanager
    def transaction(self, what: str = "") -> Iterator[psycopg.Cursor[Row]]:
        """A cursor inside one transaction: committed at the end, rolled back on any error."""
        with self.cursor(what) as cur, cur.connection.transaction():
            yield cur

    # --- named queries -------------------------------------------------------------------------
    def all(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        with self.cursor(name) as cur:
            cur.execute(query(name), params or {})
            return cur.fetchall() if cur.description else []

    def one(self, name: str, params: Mapping[str, Any] | None = None) -> Row | None:
        with self.cursor(name) as cur:
            cur.execute(query(name), params or {})
            return cur.fetchone() if cur.description else None

    def value(self, name: str, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = self.one(name, params)
        return next(iter(row.values())) if row else None

    def execute(self, name: str, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement; the number of rows it affected."""
        with self.cursor(name) as cur:
            cur.execute(query(name), params or {})
            return cur.rowcount

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
