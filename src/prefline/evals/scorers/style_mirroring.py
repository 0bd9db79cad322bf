"""Mirroring: how much of the response repeats the user's own wording.

Restating the question ("You asked how to keep basil fresh. To keep basil fresh, ...") makes
an answer look attentive and longer without adding anything. The measure is the share of the
response's word 3-grams that also occur in the user's last message, leaving out 3-grams made
only of stopwords ("it is a") and code (repeating the user's code is often the answer). The
user's first person is read as the response's second person ("my" matches "your").
"""

from __future__ import annotations

import re
from typing import Any

from prefline.evals.scorers import Score, scorer
from prefline.text.words import STOPWORDS, tokens

NGRAM = 3
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]+`", re.DOTALL)


# The user's "I" is the response's "you": "my glasses fog up" comes back as "your glasses fog up".
_SECOND_PERSON = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "am": "are",
                  "i'm": "you're", "i've": "you've", "i'd": "you'd", "i'll": "you'll", "we": "you", "us": "you",
                  "our": "your", "ours": "yours", "we're": "you're"}


def _ngrams(words: list[str]) -> list[tuple[str, ...]]:
    stop = [w in STOPWORDS for w in words]
    keep = [not all(s) for s in zip(*(stop[i:] for i in range(NGRAM)))]
    return [g for g, k in zip(zip(*(words[i:] for i in range(NGRAM))), keep) if k]


def mirroring_share(response: str, prompt: str) -> tuple[float | None, dict[str, Any]]:
    """Share of the response's content 3-grams found in ``prompt``; None when the response has none."""
    said = set(_ngrams([_SECOND_PERSON.get(w, w) for w in tokens(_CODE.sub(" ", prompt))]))
    grams = _ngrams(tokens(_CODE.sub(" ", response)))
    if not grams:
        return None, {"ngrams": 0}
    shared = [g for g in grams if g in said]
    unique = list(dict.fromkeys(" ".join(g) for g in shared))
    return len(shared) / len(grams), {"ngrams": len(grams), "shared": len(shared), "examples": unique[:8]}


@scorer("mirroring", section="style", layer="behaviour", category="behaviour", axis="reliability", metrics={"mirroring": "lower"})
def mirroring(item, generation) -> dict[str, Score]:
    """``mirroring``, in [0, 1]: the share of the response's word 3-grams (lower-cased, excluding
    stopword-only 3-grams and code) that occur in the last user message. Lower is better:
    a direct answer repeats a few of the user's words; a parroting one repeats whole phrases.
    ``None`` when the response has no 3-gram to compare (empty or under three words).
    """
    prompt = next((m.content for m in reversed(item.messages) if m.role == "user"), "")
    value, evidence = mirroring_share(generation.output, prompt)
    return {"mirroring": Score(None if value is None else round(value, 4), evidence)}
