"""Style metrics: how long the response is, and how it says what it says.

These are the first numbers that show a preference-tuned model drifting toward *sounding*
helpful (longer answers, hedges, disclaimers, parroting the question) or toward the safest
reading (refusing benign requests). Every scorer is rule-based and fast, and each decision
keeps its evidence: the counts, or the pattern that matched.

This module holds length and verbosity; the others are in ``style_*`` modules:
refusal (``style_refusal``), hedging and disclaimers (``style_hedging``), mirroring
(``style_mirroring``), sycophancy (``style_sycophancy``), the voice surface
(``style_voice``) and latency (``style_latency``). docs/detectors.md documents them all,
with the measured accuracy of the detectors.
"""

from __future__ import annotations

import re

from prefline.evals.scorers import Score, scorer
from prefline.text.words import count_words, split_sentences

_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.DOTALL)


def count_sentences(text: str) -> int:
    """Prose sentences (list items and paragraphs count as one each); code blocks count as none."""
    return len(split_sentences(_CODE_BLOCK.sub(" ", text)))


@scorer("length", section="style", layer="behaviour", category="formatting", axis="reliability",
        metrics={"length_tokens": "lower", "length_words": "lower"})
def length(item, generation) -> dict[str, Score]:
    """Response length: ``length_tokens`` in model tokens (``None`` when the server reports no
    usage) and ``length_words`` in words; the verbosity that preference tuning tends to reward.

    Lower is treated as better only relative to a baseline: policies bound the ratio, not the size.
    """
    words = count_words(generation.output)
    evidence = {"finish_reason": generation.finish_reason}
    tokens = generation.output_tokens  # None when a server reports no usage
    return {
        "length_tokens": Score(float(tokens) if tokens is not None else None, evidence),
        "length_words": Score(float(words), evidence),
    }


@scorer("verbosity", section="style", layer="behaviour", category="formatting", axis="reliability",
        metrics={"length_sentences": "lower", "length_ratio_reference": "lower"})
def verbosity(item, generation) -> dict[str, Score]:
    """Verbosity beyond tokens and words (those are the ``length`` scorer's).

    ``length_sentences``: prose sentences, list items and paragraphs (code blocks excluded).
    ``length_ratio_reference``: response words / reference answer words, on items with a
    ``reference`` (``None`` elsewhere); 1.0 is as long as the reference answer.
    Lower is better only relative to a baseline, as for ``length``.
    """
    words = count_words(generation.output)
    reference_words = count_words(item.reference) if item.reference else 0
    ratio = round(words / reference_words, 4) if reference_words else None
    return {
        "length_sentences": Score(float(count_sentences(generation.output)), {"words": words}),
        "length_ratio_reference": Score(ratio, {"words": words, "reference_words": reference_words or None}),
    }
