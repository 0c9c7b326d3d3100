"""Named queries: the SQL s3vl's Python code runs, kept in ``sql/queries/*.sql`` (package data).

A file holds queries one after the other, each under a header line naming it (procrastinate's
convention), with optional comment lines that say what it does::

    -- lease --
    -- Lease a batch of pending keys of one sync.
    SELECT sync_name, key, version, attempts FROM s3vl.lease(%(worker)s, %(batch)s, ...);

Parameters are psycopg's named placeholders; identifiers never come from callers. The files are
read once, at first use; a name defined twice is an error at load time, not a surprise later.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z][a-z0-9_]*) --$", re.M)


def parse(text: str, source: str = "<string>") -> dict[str, str]:
    """The queries of one file's text, by name (header and comment lines dropped)."""
    parts = _HEADER.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.lstrip().startswith("--")]
        statement = "\n".join(lines).strip().rstrip(";").strip()
        if name in found:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        if not statement:
            raise ValueError(f"{source}: query {name!r} is empty")
        found[name] = statement
    return found


@cache
def all_queries() -> dict[str, str]:
    """Every named query of every ``sql/queries/*.sql`` file."""
    folder = resources.files("sync") / "sql" / "queries"
    queries: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, statement in parse(entry.read_text(encoding="utf-8"), entry.name).items():
            if name in queries:
                raise ValueError(f"{entry.name}: query {name!r} is defined in another file too")
            queries[name] = statement
    return queries


def query(name: str) -> str:
    """The SQL of a named query."""
    try:
        return all_queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in sql/queries/") from None
