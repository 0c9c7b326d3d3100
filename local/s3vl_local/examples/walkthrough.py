"""``s3vl example walkthrough``: the published Aurora + S3 Vectors walkthrough's sample data.

Loads, re-runnably, what the walkthrough's SQL expects (issue 5; AWS sample
``aws-samples/sample-rds-lambda-s3vector-integration``):

* the vector bucket and the 5-dimension cosine index ``test-index-5d``;
* the sample's 50 vectors ``vec_001`` ... ``vec_050`` (``sample-data/sample-vectors.json``: the
  same values and metadata ``{"category", "id"}``; ``vec_048``..``vec_050`` are the "identical
  units" with category ``identical``), plus ``s3vl_id`` (= the product id) so pre-filtering
  from SQL works on them;
* the relational side of the join, ``s3vl_demo_products`` (one product per vector, joined on
  ``vector_key``). The published sample does not ship this table's rows, so they are a faithful
  equivalent: deterministic names, prices and stock flags chosen so that the walkthrough's join
  (``in_stock AND price < 500``) returns rows.

It prints ``export S3VL_S3_INDEX_ARN=...`` and ``export S3VL_LAMBDA_FUNCTION_ARN=...``, so
``eval "$(s3vl example walkthrough)"`` prepares a shell for ``psql -v ...`` (progress goes to stderr).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import psycopg
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from sync.errors import DatabaseError, VectorStoreError

log = structlog.get_logger(__name__)

BUCKET = "s3vl-walkthrough"
INDEX = "test-index-5d"
DIMENSION = 5
LOCAL_ACCOUNT_ID = "000000000000"
QUERY_FUNCTION_NAME = "s3vl-query"

# (key, float32 values, category): the published sample-vectors.json, value for value.
VECTORS: tuple[tuple[str, tuple[float, ...], str], ...] = (
    ("vec_001", (0.231636, -0.413973, 0.879761, -0.003234, 0.031307), "example"),
    ("vec_002", (-0.245189, -0.429068, 0.761487, -0.061035, -0.414964), "example"),
    ("vec_003", (-0.392024, 0.229378, 0.582031, 0.382919, -0.555263), "demo"),
    ("vec_004", (0.279681, -0.641694, -0.255942, 0.081313, -0.661732), "example"),
    ("vec_005", (-0.183752, -0.360292, -0.436839, 0.384475, 0.705532), "sample"),
    ("vec_006", (-0.58893, -0.099873, 0.630855, 0.300615, -0.393497), "test"),
    ("vec_007", (0.167466, 0.377995, 0.54494, 0.224377, -0.694097), "sample"),
    ("vec_008", (0.112983, -0.307406, -0.429, -0.614242, -0.575676), "sample"),
    ("vec_009", (-0.187725, 0.648167, -0.496189, 0.476914, -0.266437), "test"),
    ("vec_010", (-0.244267, 0.459193, 0.117414, 0.769749, -0.350964), "test"),
    ("vec_011", (-0.07347, 0.396349, -0.679846, 0.265246, -0.552235), "example"),
    ("vec_012", (0.140355, -0.648324, 0.443659, -0.059651, 0.599654), "demo"),
    ("vec_013", (-0.355315, 0.577511, -0.570293, 0.443509, 0.135265), "demo"),
    ("vec_014", (-0.468575, -0.200935, 0.445921, 0.471605, -0.564628), "sample"),
    ("vec_015", (0.465685, 0.404172, 0.495715, -0.480368, 0.378545), "demo"),
    ("vec_016", (-0.033821, -0.578959, 0.38767, -0.70328, 0.13701), "test"),
    ("vec_017", (-0.566836, 0.352936, 0.48333, -0.258184, 0.503851), "test"),
    ("vec_018", (0.219343, 0.404291, 0.460605, 0.601278, -0.463407), "test"),
    ("vec_019", (0.207239, -0.603678, 0.003911, -0.551362, 0.537225), "sample"),
    ("vec_020", (0.510567, 0.446895, 0.468875, -0.419657, 0.379013), "sample"),
    ("vec_021", (-0.330039, 0.647804, 0.357397, 0.561601, -0.168211), "sample"),
    ("vec_022", (0.33415, -0.429053, -0.011846, 0.233988, 0.805833), "example"),
    ("vec_023", (-0.121426, 0.284817, -0.357824, 0.662457, 0.580731), "test"),
    ("vec_024", (0.291196, -0.606873, -0.42821, 0.04688, -0.601122), "example"),
    ("vec_025", (0.828028, 0.279064, -0.20264, 0.441936, -0.011076), "sample"),
    ("vec_026", (-0.749175, 0.106882, 0.373376, 0.513924, -0.154226), "demo"),
    ("vec_027", (-0.730906, -0.016354, -0.416384, 0.257678, 0.475117), "sample"),
    ("vec_028", (0.44888, 0.462402, -0.357827, -0.434654, 0.517423), "sample"),
    ("vec_029", (-0.089402, 0.129519, -0.584866, -0.602967, -0.519225), "test"),
    ("vec_030", (-0.433862, -0.226339, 0.591893, 0.226629, 0.59903), "test"),
    ("vec_031", (-0.154754, 0.021674, 0.731029, 0.463279, -0.475973), "example"),
    ("vec_032", (-0.331779, -0.457539, -0.377634, 0.708268, -0.190605), "example"),
    ("vec_033", (0.270134, 0.415038, 0.291336, -0.816122, 0.061969), "sample"),
    ("vec_034", (-0.628416, 0.426063, -0.238312, -0.336041, -0.503833), "example"),
    ("vec_035", (-0.029614, -0.558568, 0.591888, 0.547909, 0.191284), "test"),
    ("vec_036", (0.328327, -0.463254, 0.04038, 0.17959, 0.802318), "example"),
    ("vec_037", (-0.242972, 0.648796, -0.449978, 0.527392, -0.198509), "demo"),
    ("vec_038", (-0.104381, 0.429696, -0.710331, 0.249227, -0.487629), "sample"),
    ("vec_039", (0.808322, 0.330206, -0.224634, 0.431139, 0.035189), "demo"),
    ("vec_040", (0.248744, -0.598527, -0.242527, 0.057493, -0.71956), "example"),
    ("vec_041", (0.217469, -0.425294, 0.877813, 0.032582, 0.01469), "example"),
    ("vec_042", (0.147132, 0.331861, 0.584437, 0.240576, -0.684672), "example"),
    ("vec_043", (-0.204721, -0.428361, 0.764186, -0.103168, -0.424232), "sample"),
    ("vec_044", (-0.429693, -0.158102, 0.601775, 0.26905, 0.596529), "test"),
    ("vec_045", (-0.627372, 0.376082, -0.306759, -0.330851, -0.511276), "sample"),
    ("vec_046", (0.435927, 0.469944, -0.365359, -0.44792, 0.504975), "test"),
    ("vec_047", (-0.187165, -0.462101, 0.777874, -0.047392, -0.379602), "sample"),
    ("vec_048", (-0.116703, 0.325043, 0.578032, 0.739321, -0.003246), "identical"),
    ("vec_049", (-0.116703, 0.325043, 0.578032, 0.739321, -0.003246), "identical"),
    ("vec_050", (-0.116703, 0.325043, 0.578032, 0.739321, -0.003246), "identical"),
)

_NOUNS = (
    "Desk Lamp", "Office Chair", "Standing Desk", "Monitor Arm", "Keyboard", "Wireless Mouse",
    "Webcam", "Headset", "USB-C Hub", "Laptop Stand",
)
_STYLES = ("Classic", "Pro", "Compact", "Deluxe", "Eco")

PRODUCTS_DDL = """
CREATE TABLE IF NOT EXISTS s3vl_demo_products (
    id            integer PRIMARY KEY,
    vector_key    text NOT NULL UNIQUE,
    product_name  text NOT NULL,
    category      text NOT NULL,
    price         numeric(10, 2) NOT NULL CHECK (price >= 0),
    in_stock      boolean NOT NULL DEFAULT true,
    description   text
);
COMMENT ON TABLE s3vl_demo_products IS
    'Walkthrough sample: one product per vector in test-index-5d (join on vector_key).';
"""

UPSERT = """
INSERT INTO s3vl_demo_products (id, vector_key, product_name, category, price, in_stock, description)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET vector_key = EXCLUDED.vector_key, product_name = EXCLUDED.product_name,
    category = EXCLUDED.category, price = EXCLUDED.price, in_stock = EXCLUDED.in_stock,
    description = EXCLUDED.description
"""


@dataclass(frozen=True)
class Product:
    id: int
    vector_key: str
    product_name: str
    category: str
    price: float
    in_stock: bool
    description: str


def products() -> list[Product]:
    """One product per sample vector; deterministic, so every run loads the same rows."""
    out = []
    for i, (key, _values, category) in enumerate(VECTORS, start=1):
        name = f"{_STYLES[(i - 1) // len(_NOUNS) % len(_STYLES)]} {_NOUNS[(i - 1) % len(_NOUNS)]}"
        price = round(19.99 + (i * 37) % 600, 2)  # 56.99 .. 618.99: some above the walkthrough's 500
        out.append(Product(i, key, name, category, price, i % 4 != 0,
                           f"Sample product {i} for the s3vl walkthrough ({category})"))
    return out


def vector_records() -> list[dict[str, Any]]:
    """PutVectors records: the sample's metadata (category, id) plus s3vl_id for pre-filtering."""
    return [
        {"key": key, "data": {"float32": list(values)},
         "metadata": {"category": category, "id": str(i), "s3vl_id": str(i)}}
        for i, (key, values, category) in enumerate(VECTORS, start=1)
    ]


@dataclass(frozen=True)
class WalkthroughResult:
    index_arn: str
    lambda_arn: str
    vectors: int
    products: int

    def export_lines(self) -> str:
        return (f"export S3VL_S3_INDEX_ARN={self.index_arn}\n"
                f"export S3VL_LAMBDA_FUNCTION_ARN={self.lambda_arn}")


def _aws(what: str, exc: Exception) -> VectorStoreError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return VectorStoreError(f"{what} failed: {err.get('Code')}: {err.get('Message')}")
    return VectorStoreError(f"{what} failed: {exc}")


def ensure_index(client: Any, bucket: str = BUCKET, index: str = INDEX) -> str:
    """Create the bucket and the 5-dimension cosine index unless they exist; return the index ARN."""
    try:
        client.create_vector_bucket(vectorBucketName=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConflictException":
            raise _aws("CreateVectorBucket", exc) from exc
    except BotoCoreError as exc:
        raise _aws("CreateVectorBucket", exc) from exc
    try:
        client.create_index(vectorBucketName=bucket, indexName=index, dataType="float32",
                            dimension=DIMENSION, distanceMetric="cosine")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConflictException":
            raise _aws("CreateIndex", exc) from exc
    try:
        info = client.get_index(vectorBucketName=bucket, indexName=index)["index"]
    except (ClientError, BotoCoreError) as exc:
        raise _aws("GetIndex", exc) from exc
    if info["dimension"] != DIMENSION or info["distanceMetric"] != "cosine":
        raise VectorStoreError(
            f"index {bucket}/{index} exists with {info['dimension']} dimensions ({info['distanceMetric']}); "
            f"the walkthrough needs {DIMENSION} (cosine): delete it or use --bucket to load elsewhere"
        )
    return str(info["indexArn"])


def load_vectors(client: Any, index_arn: str) -> int:
    """Put the 50 sample vectors (PutVectors overwrites by key, so re-running is harmless)."""
    records = vector_records()
    try:
        client.put_vectors(indexArn=index_arn, vectors=records)
    except (ClientError, BotoCoreError) as exc:
        raise _aws("PutVectors", exc) from exc
    return len(records)


def load_products(conninfo: str) -> int:
    """Create and fill ``s3vl_demo_products`` (upsert by id: re-runnable)."""
    rows = products()
    try:
        with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
            cur.execute(PRODUCTS_DDL)
            cur.executemany(UPSERT, [(p.id, p.vector_key, p.product_name, p.category, p.price, p.in_stock,
                                      p.description) for p in rows])
    except psycopg.Error as exc:
        raise DatabaseError(f"loading s3vl_demo_products failed: {str(exc).strip()}") from exc
    return len(rows)


def lambda_arn_for(index_arn: str) -> str:
    """The query Lambda's ARN in the index's region and account (the local stack's s3vl-query)."""
    parts = index_arn.split(":")
    return f"arn:aws:lambda:{parts[3]}:{parts[4]}:function:{QUERY_FUNCTION_NAME}"


def run(conninfo: str | None, region: str, bucket: str = BUCKET, client: Any = None) -> WalkthroughResult:
    """Load everything; ``conninfo=None`` skips the table. ``client``: an ``s3vectors`` client."""
    s3v = client or boto3.client("s3vectors", region_name=region)
    index_arn = ensure_index(s3v, bucket)
    n_vectors = load_vectors(s3v, index_arn)
    n_products = load_products(conninfo) if conninfo else 0
    log.info("walkthrough.loaded", index_arn=index_arn, vectors=n_vectors, products=n_products)
    return WalkthroughResult(index_arn, lambda_arn_for(index_arn), n_vectors, n_products)
