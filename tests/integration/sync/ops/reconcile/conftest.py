"""Fixtures shared by the reconcile tests that drive PostgreSQL directly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test's database (as its superuser: drift is injected behind s3vl)."""
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c
