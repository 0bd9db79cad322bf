"""The hedging scorer: hedges, stacked qualifiers and performative disclaimers (``prefline.text.hedging``)."""

from __future__ import annotations

from prefline.evals.scorers import Score, scorer
from prefline.text.hedging import LOW_RISK, detect_hedging


@scorer("hedging", section="style", layer="behaviour", category="behaviour", axis="reliability",
        metrics={"hedging_rate": "lower", "hedged": "lower", "disclaimer": "lower"})
def hedging(item, generation) -> dict[str, Score]:
    """Hedging and performative disclaimers.

    ``hedging_rate``: hedges per 100 words (might, perhaps, I think, it depends, ...).
    ``hedged``: 1 when qualifiers are stacked ("might possibly"), or the response has three or
    more hedges, or two or more at six or more per 100 words.
    ``disclaimer``: 1 for "as an AI", "I'm not a doctor/lawyer", "not financial advice",
    "for informational purposes only", or a referral to a professional on an item whose
    ``risk`` slice is ``none`` (on other items a referral may be warranted and is not counted).
    Lower is better for all three. Quoted text and code are ignored.
    """
    risk = item.slices.get("risk")
    found = detect_hedging(generation.output, low_risk=None if risk is None else risk == LOW_RISK)
    evidence = {k: found[k] for k in ("hedges", "words", "matched", "stacked", "disclaimers", "referral_counted")}
    return {
        "hedging_rate": Score(found["hedges_per_100_words"], evidence),
        "hedged": Score(float(found["hedged"]), evidence),
        "disclaimer": Score(float(found["disclaimer"]), evidence),
    }
