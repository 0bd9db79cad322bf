"""Voice surface: can the response be read aloud, and how long does that take?

On a voice surface the response is spoken by a text-to-speech engine: markdown cannot be
heard (a header, a bullet, a table, a code block, a link, ``**emphasis**``), and a long
answer keeps the listener waiting. These metrics apply only to items tagged
``surface: voice`` and are ``None`` elsewhere.
"""

from __future__ import annotations

import re
from typing import Any

from prefline.evals.scorers import Score, scorer
from prefline.text.words import count_words

WORDS_PER_MINUTE = 150  # a typical conversational speaking rate for text-to-speech
TOO_LONG_S = 30.0  # a spoken answer longer than this loses the listener (the metric's threshold)
VOICE_SURFACE = "voice"

UNSPEAKABLE: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.MULTILINE)
    for name, pattern in {
        "header": r"^\s{0,3}#{1,6}\s+\S",
        "bullet": r"^\s*[-*+•]\s+\S",
        "table": r"^\s*\|.*\|\s*$",
        "code": r"```|^(?: {4}|\t)\S|`[^`\n]+`",
        "link": r"\[[^\]\n]+\]\([^)\s]+\)|\bhttps?://\S+|\bwww\.\S+",
        "emphasis": r"\*\*[^*\n]+\*\*|__[^_\n]+__|(?<![\w*])\*[^*\s][^*\n]*\*(?![\w*])|(?<![\w_])_[^_\s][^_\n]*_(?![\w_])",
        "rule": r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$",
    }.items()
}


def speaking_time_s(text: str) -> float:
    return count_words(text) / WORDS_PER_MINUTE * 60.0


def unspeakable_markup(text: str) -> dict[str, int]:
    """Markdown that a speech engine would read out or drop: counts by kind, only kinds found."""
    return {name: n for name, p in UNSPEAKABLE.items() if (n := len(p.findall(text)))}


@scorer("voice", section="style", layer="behaviour", category="formatting", axis="capability",
        metrics={"voice_speaking_time_s": "lower", "voice_unspeakable": "lower", "voice_too_long": "lower"})
def voice(item, generation) -> dict[str, Score]:
    """Voice surface only (``surface: voice`` items; ``None`` elsewhere).

    ``voice_speaking_time_s``: words / 150 per minute, in seconds.
    ``voice_unspeakable``: 1 when the response has markdown a speech engine cannot say
    (headers, bullets, tables, code, links, emphasis markers, rules); counts in the evidence.
    ``voice_too_long``: 1 when the speaking time exceeds 30 s. Lower is better for all three.
    """
    if item.slices.get("surface") != VOICE_SURFACE:
        return {m: Score(None, {}) for m in ("voice_speaking_time_s", "voice_unspeakable", "voice_too_long")}
    seconds = speaking_time_s(generation.output)
    markup = unspeakable_markup(generation.output)
    timing: dict[str, Any] = {"words": count_words(generation.output), "words_per_minute": WORDS_PER_MINUTE, "limit_s": TOO_LONG_S}
    return {
        "voice_speaking_time_s": Score(round(seconds, 2), timing),
        "voice_unspeakable": Score(float(bool(markup)), {"markup": markup}),
        "voice_too_long": Score(float(seconds > TOO_LONG_S), {**timing, "speaking_time_s": round(seconds, 2)}),
    }
