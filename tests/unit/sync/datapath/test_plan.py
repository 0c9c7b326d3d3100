"""The pipeline's pure decisions: what each leased key needs (diff with state), and the state recorded."""

from __future__ import annotations

from sync.datapath.contract import content_hash, metadata_hash
from sync.datapath.definitions import SyncDef
from sync.datapath.outbox import LeasedKey
from sync.datapath.plan import diff, result_of
from sync.datapath.rows import Loaded, Row, State


def _sync(**kw: object) -> SyncDef:
    base: dict[str, object] = dict(
        name="p", source="public.p", key_columns=["id"], index_name="i",
        index_arn="arn:aws:s3vectors:us-west-2:000000000000:bucket/b/index/i", text_expression="t",
        metadata_columns=["c"], embedding_model="amazon.titan-embed-text-v2:0", dimensions=256,
        embedding_version="ev1")
    base.update(kw)
    return SyncDef.model_validate(base)


def _row(text: str, md: dict[str, object] | None = None) -> Row:
    return Row(text, dict(md or {}), content_hash(text))


def _state(text: str, md: dict[str, object] | None = None, *, ev: str = "ev1", count: int = 1,
           chunked: bool = False) -> State:
    return State(content_hash(text), metadata_hash(dict(md or {}), False), ev, count, chunked)


def _kinds(sync: SyncDef, loaded: Loaded, keys: list[str]) -> dict[str, str]:
    return {w.key: w.kind for w in diff(sync, [LeasedKey(k, 1) for k in keys], loaded)}


def test_diff_decides_each_case() -> None:
    sync = _sync()
    loaded = Loaded(
        rows={"new": _row("a"), "same": _row("b", {"c": 1}), "meta": _row("c", {"c": 2}),
              "text": _row("d2"), "ev": _row("e"), "blank": _row("  "), "unknown": _row("f")},
        states={"same": _state("b", {"c": 1}), "meta": _state("c", {"c": 1}), "text": _state("d1"),
                "ev": _state("e", ev="old"), "gone": _state("x"), "blank": _state("y"),
                "unknown": State(None, None, "ev1", 1, False)},
        errors={"bad": "division by zero"},
    )
    kinds = _kinds(sync, loaded, ["new", "same", "meta", "text", "ev", "gone", "blank", "unknown", "bad", "none"])
    assert kinds == {"new": "embed", "same": "unchanged", "meta": "metadata", "text": "embed", "ev": "embed",
                     "gone": "delete", "blank": "delete", "unknown": "embed", "bad": "failed", "none": "delete"}


def test_diff_deletes_vanished_chunks_and_old_unchunked_key() -> None:
    sync = _sync(chunk_size=100, chunk_overlap=0)
    long_text = " ".join(["word"] * 60)  # about 300 characters -> several chunks
    loaded = Loaded(rows={"k": _row("short text")}, states={"k": _state(long_text, count=4, chunked=True)})
    (w,) = diff(sync, [LeasedKey("k", 3)], loaded)
    assert w.kind == "embed"
    assert w.new_keys == ["k#0"]
    assert w.delete_keys == ["k#1", "k#2", "k#3"]
    # switching chunking on: the unchunked vector goes
    loaded = Loaded(rows={"k": _row("short text")}, states={"k": _state("short text")})
    (w,) = diff(sync, [LeasedKey("k", 1)], loaded)
    assert (w.kind, w.new_keys, w.delete_keys) == ("embed", ["k#0"], ["k"])


def test_diff_delete_without_state_touches_nothing() -> None:
    (w,) = diff(_sync(), [LeasedKey("k", 1)], Loaded())
    assert (w.kind, w.delete_keys) == ("delete", [])
    r = result_of(_sync(), w)
    assert r.deleted


def test_result_records_state() -> None:
    sync = _sync()
    (w,) = diff(sync, [LeasedKey("k", 5)], Loaded(rows={"k": _row("hello", {"c": 1})}))
    r = result_of(sync, w)
    assert (r.key, r.version, r.deleted, r.content_hash, r.embedding_version, r.chunk_count, r.chunked) == (
        "k", 5, False, content_hash("hello"), "ev1", 1, False)
