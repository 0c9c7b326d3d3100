"""Install and remove the ``s3vl`` SQL schema from the files under ``sql/``.

Two kinds of files, so that re-running an install is always safe (the pgai convention):

* ``sql/incremental/NNN-name.sql`` create tables and other state. Each runs exactly once per
  database and is recorded in ``s3vl.migrations`` with the SHA-256 of its statements (comment
  lines and blank lines left out, so rewording a comment is not a change); a recorded file whose
  statements later changed is reported (write a new file instead of editing an applied one).
* ``sql/idempotent/NNN-name.sql`` hold functions, views and grants written with
  ``CREATE OR REPLACE``; they run on every install, so fixing a function is editing its file.

Number ranges keep the parts apart: 000-099 core, 100-199 query interface, 200-299 sync,
300-399 reconcile. Everything runs in one transaction under an advisory lock, so two installers
cannot interleave and a failure leaves the database exactly as it was.

The files are package data: ``sync/sql`` is a link to the repository's top-level ``sql/`` folder
(the one source of truth), which a wheel carries as ``sync/sql/``, so ``s3vl install-sql`` works
from any install. The local stack's stand-ins for Aurora's extensions are not here: they are the
local stack's own (``s3vl_local``), applied with :func:`run_files` by ``s3vl dev up`` only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import structlog

from sync import __version__
from sync.db.connection import Database
from sync.errors import SchemaError

log = structlog.get_logger(__name__)

#: The installed SQL files (package data; a plain folder in every supported install, never a zip).
SQL_DIR = Path(str(resources.files("sync") / "sql"))
_LOCK_KEY = 0x53_33_56_4C  # "S3VL": the advisory lock every installer takes

#: Whole-file checksums s3vl 0.1 recorded for incremental files whose comments changed since
#: (their statements did not), so a 0.1 database's install does not report them as edited.
_RECORDED_BY_0_1 = {
    "incremental/100-query.sql": "4849eafaa0139404532a2c3713b37ec3b3b186970f8025cd41b992f576c0ac4a",
    "incremental/200-sync.sql": "f320d4defc0f083c7135584d27cda649595bc9064681cfa5d50515c573ed577d",
    "incremental/202-sync-outbox-no-fk.sql": "b41eb03bf9b90fa6b15235e515975aa1465f753967c42897a953a3ebde512477",
}

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS s3vl;
CREATE TABLE IF NOT EXISTS s3vl.migrations (
    name        text PRIMARY KEY,
    sha256      text NOT NULL,
    s3vl_version text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE s3vl.migrations IS 'Incremental sql/ files applied to this database (s3vl install-sql).';
"""


@dataclass(frozen=True)
class SqlFile:
    """One file of ``sql/``, with the name it is recorded under."""

    kind: str  # "incremental" | "idempotent" | "uninstall", or a caller's own label
    path: Path

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.path.name}"

    @property
    def body(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def sha256(self) -> str:
        """The checksum recorded for the file: of its statements, without comment-only lines."""
        statements = "\n".join(
            line.rstrip() for line in self.body.splitlines() if line.strip() and not line.lstrip().startswith("--")
        )
        return hashlib.sha256(statements.encode()).hexdigest()

    def matches(self, recorded: str) -> bool:
        """Whether a checksum in ``s3vl.migrations`` records this file's current statements.

        s3vl 0.1 recorded the SHA-256 of the whole file, comments included: an unedited file
        still has that checksum, and the files whose comments were reworded since then have
        their 0.1 checksums in :data:`_RECORDED_BY_0_1`.
        """
        whole = hashlib.sha256(self.body.encode()).hexdigest()
        return recorded in (self.sha256, whole) or _RECORDED_BY_0_1.get(self.name) == recorded


@dataclass
class InstallReport:
    """What an install did: files applied now, files already present, files changed since."""

    applied: list[str]
    skipped: list[str]
    changed: list[str]
    idempotent: list[str]


def sql_files(kind: str, sql_dir: Path = SQL_DIR) -> list[SqlFile]:
    """The files of one kind, in the order they run (by file name)."""
    folder = sql_dir / kind
    if not folder.is_dir():
        return []
    return [SqlFile(kind, p) for p in sorted(folder.glob("*.sql"))]


def render_install_script(sql_dir: Path = SQL_DIR) -> str:
    """One plain SQL script equivalent to a fresh install (for ``psql -f`` or a review)."""
    parts = ["BEGIN;", _BOOTSTRAP]
    for f in sql_files("incremental", sql_dir):
        parts.append(f"-- {f.name}\n{f.body}")
        parts.append(
            "INSERT INTO s3vl.migrations (name, sha256, s3vl_version) "
            f"VALUES ('{f.name}', '{f.sha256}', '{__version__}') ON CONFLICT (name) DO NOTHING;"
        )
    parts.extend(f"-- {f.name}\n{f.body}" for f in sql_files("idempotent", sql_dir))
    parts.append("COMMIT;")
    return "\n".join(parts)


def _run_file(cur: psycopg.Cursor[Any], f: SqlFile) -> None:
    try:
        cur.execute(f.body.encode())
    except psycopg.Error as exc:
        diag = exc.diag
        detail = diag.message_primary or str(exc)
        raise SchemaError(
            f"{f.name} failed: {detail}" + (f" ({diag.context.strip()})" if diag.context else "")
        ) from exc


def install(conninfo: str, sql_dir: Path = SQL_DIR) -> InstallReport:
    """Apply ``sql/`` to the database in one transaction; safe to run any number of times."""
    report = InstallReport(applied=[], skipped=[], changed=[], idempotent=[])
    with Database(conninfo, application_name="s3vl install-sql") as db, db.transaction("install-sql") as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cur.execute(_BOOTSTRAP.encode())
        cur.execute("SELECT name, sha256 FROM s3vl.migrations")
        recorded = {str(r["name"]): str(r["sha256"]) for r in cur.fetchall()}
        for f in sql_files("incremental", sql_dir):
            if f.name in recorded:
                report.skipped.append(f.name)
                if not f.matches(recorded[f.name]):
                    report.changed.append(f.name)
                    log.warning(
                        "schema.migration_changed",
                        file=f.name,
                        hint="an applied incremental file was edited; add a new file instead",
                    )
                continue
            _run_file(cur, f)
            cur.execute(
                "INSERT INTO s3vl.migrations (name, sha256, s3vl_version) VALUES (%s, %s, %s)",
                (f.name, f.sha256, __version__),
            )
            report.applied.append(f.name)
        for f in sql_files("idempotent", sql_dir):
            _run_file(cur, f)
            report.idempotent.append(f.name)
    log.info(
        "schema.installed", applied=len(report.applied), skipped=len(report.skipped), idempotent=len(report.idempotent)
    )
    return report


def run_files(conninfo: str, files: Sequence[SqlFile]) -> list[str]:
    """Run SQL files in order, in one transaction under the installers' advisory lock."""
    with Database(conninfo, application_name="s3vl install-sql") as db, db.transaction("install-sql") as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for f in files:
            _run_file(cur, f)
    return [f.name for f in files]


def uninstall(conninfo: str, sql_dir: Path = SQL_DIR) -> None:
    """Run ``sql/uninstall.sql``: the schema, its triggers on user tables and its roles go."""
    run_files(conninfo, [SqlFile("uninstall", sql_dir / "uninstall.sql")])
