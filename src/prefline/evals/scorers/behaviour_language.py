"""Which language a response is written in: ``langdetect`` when installed, else stopword profiles."""

from __future__ import annotations

import re
from functools import lru_cache

# Fallback when langdetect is not installed: the language whose most frequent function words
# cover the most tokens, among a few Latin-script languages; undecided below 2 hits.
STOPWORD_PROFILES = {
    "en": "the and is are of to in that it with for was this not you be have on",
    "es": "el la los las de que y es en un una por con para no se del al",
    "fr": "le la les de des et est un une que dans pour pas qui sur du au avec",
    "de": "der die das und ist nicht ein eine ich zu den mit von sie es auf dem",
    "it": "il la di che e è un una per non sono del della con gli le lo",
    "pt": "o a os as de que e é um uma para não com do da em no na",
    "nl": "de het een en is van dat niet ik te zijn op met voor er maar",
}


@lru_cache(maxsize=4096)  # loose checking asks again for each variant, and many variants are the same text
def detect_language(text: str) -> tuple[str | None, str]:
    """The response's language code and how it was found: ``langdetect`` (seeded, so
    deterministic) when installed, else the stopword profiles above."""
    if not re.search(r"\w", text):
        return None, "no words"
    try:
        from langdetect import DetectorFactory, detect
        from langdetect.lang_detect_exception import LangDetectException
    except ImportError:
        return _stopword_language(text)
    DetectorFactory.seed = 0
    try:
        return detect(text).split("-")[0], "langdetect"
    except LangDetectException:
        return None, "langdetect: no features"


def _stopword_language(text: str) -> tuple[str | None, str]:
    tokens = re.findall(r"\w+", text.lower())
    hits = {code: sum(t in set(words.split()) for t in tokens) for code, words in STOPWORD_PROFILES.items()}
    best = max(hits, key=hits.get)
    if hits[best] < 2:
        return None, "stopword profiles: too few function words"
    return best, f"stopword profiles ({hits[best]} of {len(tokens)} tokens)"


__all__ = ["STOPWORD_PROFILES", "detect_language"]
