"""``s3vl demo`` end to end, in-process, on a local stack of its own (the hash embedder: no model files).

Checks what the demo tells its viewer: every product embedded once; the price cut reuses vectors
(Bedrock embeds only the two rewritten descriptions); deleted products leave the index; the SQL
questions answer from the joined table, the filtered one within its filter. Run twice: it is re-runnable.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator

import pytest
from rich.console import Console

from s3vl_local.demo import run
from s3vl_local.processes import free_port
from s3vl_local.stack import Stack
from sync.config import Settings
from tests.support.pg import make_root

pytestmark = pytest.mark.slow

PRODUCTS = 120


@pytest.fixture
def settings() -> Iterator[Settings]:
    root = make_root("s3vl-demo-")
    s = Settings(data_dir=root, dev_pg_port=free_port(), dev_endpoint_port=free_port())
    environ = dict(os.environ)  # the demo exports the stack's environment, as `eval "$(s3vl dev env)"` would
    try:
        yield s
    finally:
        os.environ.clear()
        os.environ.update(environ)
        Stack(s.data_dir, s.dev_pg_port, s.dev_endpoint_port).down(purge=True)
        shutil.rmtree(root, ignore_errors=True)


def test_the_demo_runs_twice(settings: Settings) -> None:
    for _ in range(2):
        out = io.StringIO()
        result = run.run(settings, count=PRODUCTS, embedder="hash", console=Console(file=out, width=160))
        assert result.products == PRODUCTS
        assert (result.first.embedded, result.first.failed) == (PRODUCTS, 0)
        shoes_on_sale = sum(1 for p in run.catalog(PRODUCTS) if p.category == "shoes" and p.id % 5 == 0
                            and p.id not in (1, 2, 3, 4))
        assert result.second.metadata_only == shoes_on_sale > 0
        assert (result.second.embedded, result.second.deleted, result.second.failed) == (2, 2, 0)
        assert result.bedrock_texts_second == 2  # the price cut cost no embedding
        assert set(result.answers) == {q for q, _ in run.QUESTIONS}
        for question, rows in result.answers.items():
            assert len(rows) == 5, question
            assert not {r["id"] for r in rows} & {3, 4}  # deleted products are gone from the index
        filtered = result.answers["shoes for running on mountain paths, under $150"]
        assert all(r["category"] == "shoes" and r["price"] < 150 for r in filtered)
        assert "metadata-only (vectors reused)" in out.getvalue()
