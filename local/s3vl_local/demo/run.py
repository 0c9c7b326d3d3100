"""``s3vl demo``: the whole product on one machine, end to end, in about a minute.

1. start the local stack with the semantic local model (MiniLM behind the local Bedrock);
2. create a vector bucket and an index, register it;
3. load a catalogue of 1,200 products (:mod:`s3vl_local.demo.catalog`) and ``s3vl.create_sync``;
4. run the worker until caught up (progress bar);
5. change a few rows (a price cut: metadata only; a new description: re-embedded) and delete
   two, then sync again and show what that cost;
6. ask questions in SQL (``s3vl.query_text``, else ``s3vl.query_vectors`` with a vector from
   Bedrock) joined with the products table, printed as tables.

Re-runnable: each run drops its sync, table and index and starts clean.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import boto3
import psycopg
import structlog
from botocore.exceptions import ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from s3vl_local.demo.catalog import catalog
from sync.cli import terminal
from sync.config import Settings
from sync.datapath.outbox import Outbox
from sync.datapath.worker import Totals, Worker, WorkerOptions
from sync.db.connection import Database
from sync.errors import S3vlError

log = structlog.get_logger(__name__)

BUCKET = "s3vl-demo"
INDEX = "products"
REGISTERED = "demo-products"
SYNC = "demo_products"
TABLE = "demo_products"
MODEL = "cohere.embed-english-v3"   # batches of 96 texts: the local MiniLM is ~10x faster batched
DIMENSIONS = 1024  # MiniLM's 384 dimensions zero-padded: cosine similarity exactly preserved

QUESTIONS: list[tuple[str, dict[str, Any] | None]] = [
    ("trail running shoes", None),
    ("warm coat for freezing winter weather", None),
    ("something to cook pasta in", None),
    ("a gift for a child who likes puzzles", None),
    ("shoes for running on mountain paths, under $150", {"category": "shoes", "price": {"$lt": 150}}),
]

DDL = f"""
CREATE TABLE {TABLE} (
    id          int PRIMARY KEY,
    name        text NOT NULL,
    description text,
    category    text NOT NULL,
    brand       text NOT NULL,
    price       numeric(10, 2) NOT NULL,
    in_stock    boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
)"""


@dataclass
class DemoResult:
    products: int
    first: Totals
    second: Totals
    bedrock_texts_second: int
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    query_function: str = ""


def _bedrock_texts(endpoint_url: str) -> int:
    from s3vl_local.endpoint.admin import AdminClient

    counters = AdminClient(endpoint_url).counters()
    return int(counters.get("bedrock", {}).get("InvokeModel", {}).get("texts", 0))


def _reset_index(s3v: Any) -> str:
    try:
        s3v.create_vector_bucket(vectorBucketName=BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConflictException":
            raise
    try:
        s3v.delete_index(vectorBucketName=BUCKET, indexName=INDEX)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
    resp = s3v.create_index(vectorBucketName=BUCKET, indexName=INDEX, dataType="float32", dimension=DIMENSIONS,
                            distanceMetric="cosine",
                            metadataConfiguration={"nonFilterableMetadataKeys": ["s3vl_hash", "s3vl_text"]})
    return str(resp["indexArn"])


def _register(conn: psycopg.Connection[Any], index_arn: str, lambda_arn: str, region: str) -> None:
    """Register through the query interface (Lambda -> GetIndex); if it is not available, record the
    registry row directly."""
    try:
        with conn.transaction():
            conn.execute("SELECT s3vl.configure(%s, %s)", (lambda_arn, region))
            conn.execute("SELECT s3vl.register_index(%s, %s, %s, %s)",
                         (REGISTERED, index_arn, "s3vl demo catalogue", MODEL))
        return
    except psycopg.Error as exc:
        log.warning("demo.register_fallback", error=str(exc).strip().splitlines()[0])
    bucket = index_arn.split("/")[1]
    conn.execute(
        "INSERT INTO s3vl.indexes (name, index_arn, region, account_id, bucket_name, index_name, dimension, "
        "distance_metric, embedding_model) VALUES (%s, %s, %s, '000000000000', %s, %s, %s, 'cosine', %s)",
        (REGISTERED, index_arn, region, bucket, INDEX, DIMENSIONS, MODEL))


def setup(conn: psycopg.Connection[Any], s3v: Any, lambda_arn: str, region: str, count: int) -> int:
    """A clean table, index, registration and sync; returns the number of products loaded."""
    conn.execute("SELECT s3vl.drop_sync(%s, if_exists => true)", (SYNC,))
    conn.execute("DELETE FROM s3vl.indexes WHERE name = %s", (REGISTERED,))
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(DDL)
    index_arn = _reset_index(s3v)
    _register(conn, index_arn, lambda_arn, region)
    rows = catalog(count)
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {TABLE} (id, name, description, category, brand, price, in_stock) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [(p.id, p.name, p.description, p.category, p.brand, p.price, p.in_stock) for p in rows])
    conn.execute(
        "SELECT s3vl.create_sync(name => %s, source => %s, index_name => %s, "
        "text_expression => $$name || '. ' || coalesce(description, '')$$, "
        "metadata_columns => ARRAY['category', 'brand', 'price', 'in_stock', 'updated_at'], "
        "embedding_model => %s, dimensions => %s)", (SYNC, TABLE, REGISTERED, MODEL, DIMENSIONS))
    return len(rows)


def drain(db_url: str, options: WorkerOptions, console: Console, title: str) -> Totals:
    with Database(db_url, application_name="s3vl demo") as db:
        total = Outbox(db).pending(SYNC)
    with Progress(TextColumn(title), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        task = bar.add_task(title, total=total)
        worker = Worker(db_url, options,
                        on_batch=lambda r: bar.advance(task, r.keys - r.requeued))
        return worker.run(once=True)


def change_some_rows(conn: psycopg.Connection[Any]) -> None:
    # a sale on some shoes: metadata only, the vectors are reused (no Bedrock call)
    conn.execute(f"UPDATE {TABLE} SET price = round(price * 0.8, 2) WHERE category = 'shoes' AND id % 5 = 0")
    # two descriptions rewritten: these are embedded again
    conn.execute(f"UPDATE {TABLE} SET description = description || ' New for this season: a wider toe box.' "
                 "WHERE id IN (1, 2)")
    # discontinued: their vectors are deleted
    conn.execute(f"DELETE FROM {TABLE} WHERE id IN (3, 4)")
    # an edit the sync does not read: nothing is queued
    conn.execute(f"UPDATE {TABLE} SET in_stock = in_stock WHERE id = 5")


def _has_query_text(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                       "WHERE n.nspname = 's3vl' AND p.proname = 'query_text')").fetchone()
    return bool(row and row[0])


def ask(conn: psycopg.Connection[Any], question: str, metadata_filter: dict[str, Any] | None,
        use_query_text: bool, bedrock: Any) -> list[dict[str, Any]]:
    """Top 5 products for a question, from SQL, joined with the product table."""
    filt = json.dumps(metadata_filter) if metadata_filter else None
    join = (f" JOIN {TABLE} p ON p.id = (q.metadata->>'s3vl_id')::int "
            "ORDER BY q.similarity_score DESC")
    cols = "SELECT p.id, p.name, p.category, p.price, round(q.similarity_score::numeric, 3) AS score FROM "
    if use_query_text:
        sql = cols + ("s3vl.query_text(index_name => %s, query_text => %s, top_k => 5, "
                      "metadata_filter => %s::jsonb) q") + join
        params: tuple[Any, ...] = (REGISTERED, question, filt)
    else:
        body = json.dumps({"texts": [question], "input_type": "search_query"})
        vector = json.loads(bedrock.invoke_model(modelId=MODEL, body=body)["body"].read())["embeddings"][0]
        sql = cols + ("s3vl.query_vectors(query_vector => %s::float8[], index_name => %s, top_k => 5, "
                      "metadata_filter => %s::jsonb) q") + join
        params = (vector, REGISTERED, filt)
    with conn.cursor() as cur:
        cur.execute(sql, params)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _print_answers(console: Console, question: str, metadata_filter: dict[str, Any] | None,
                   rows: list[dict[str, Any]]) -> None:
    title = f'"{question}"' + (f"  filter {json.dumps(metadata_filter)}" if metadata_filter else "")
    table = Table(title=title, title_justify="left")
    for col, justify in (("id", "right"), ("name", "left"), ("category", "left"), ("price", "right"),
                         ("score", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["category"], f"{r['price']:.2f}", f"{r['score']:.3f}")
    console.print(table)


def run(settings: Settings, *, count: int = 1200, embedder: str = "minilm",
        console: Console | None = None) -> DemoResult:
    from s3vl_local.stack import Stack, query_function_arn

    console = console or terminal.console()
    stack = Stack(settings.data_dir, settings.dev_pg_port, settings.dev_endpoint_port)
    console.print(f"[bold]1.[/] starting the local stack (PostgreSQL 15 + local AWS endpoint, embedder {embedder})")
    state = stack.up(embedder=embedder)
    os.environ.update(stack.env())
    db_url, region = state.database_url, "us-west-2"
    s3v = boto3.client("s3vectors", region_name=region, endpoint_url=state.endpoint_url)
    bedrock = boto3.client("bedrock-runtime", region_name=region, endpoint_url=state.endpoint_url)
    options = WorkerOptions(batch_size=100, lease_seconds=120, poll_seconds=0.2, concurrency=4, retry_after=1.0,
                            only_sync=SYNC, region=region, endpoint_url=state.endpoint_url)

    with psycopg.connect(db_url, autocommit=True) as conn:
        console.print(f"[bold]2.[/] bucket {BUCKET}, index {INDEX} ({DIMENSIONS} dims, cosine), "
                      f"registered as '{REGISTERED}'; [bold]3.[/] {count} products in table {TABLE}, "
                      f"sync '{SYNC}' ({MODEL})")
        n = setup(conn, s3v, query_function_arn(region), region, count)
        console.print("[bold]4.[/] the worker embeds every product (backfill)")
        first = drain(db_url, options, console, "backfill")
        if first.failed:
            raise S3vlError(f"{first.failed} product(s) failed to sync; see s3vl status")
        console.print(f"   {first.embedded} products embedded and written in {first.batches} batches")

        console.print("[bold]5.[/] a price cut on some shoes, two new descriptions, two products deleted")
        change_some_rows(conn)
        before = _bedrock_texts(state.endpoint_url)
        second = drain(db_url, options, console, "sync changes")
        texts = _bedrock_texts(state.endpoint_url) - before
        console.print(f"   {second.metadata_only} metadata-only (vectors reused), {second.embedded} re-embedded, "
                      f"{second.deleted} deleted; Bedrock embedded {texts} text(s)")

        use_qt = _has_query_text(conn)
        fn = "s3vl.query_text" if use_qt else "s3vl.query_vectors"
        console.print(f"[bold]6.[/] questions in SQL: {fn}(...) JOIN {TABLE}")
        result = DemoResult(n, first, second, texts, query_function=fn)
        for question, filt in QUESTIONS:
            rows = ask(conn, question, filt, use_qt, bedrock)
            result.answers[question] = rows
            _print_answers(console, question, filt, rows)
    console.print(f'Try it yourself: eval "$(s3vl dev env)"; psql "$S3VL_DATABASE_URL" -c "SELECT * FROM '
                  f"{fn}(index_name => '{REGISTERED}', ...)\"")
    return result
