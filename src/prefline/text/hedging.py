"""Hedging and performative disclaimers: qualifying an answer more than its content needs.

Preference tuning rewards answers that *sound* careful. Two habits follow:

- **hedging**: piling qualifiers onto claims ("it might possibly be", "I think it may perhaps"),
  so the answer commits to nothing;
- **performative disclaimers**: "As an AI ...", "I'm not a doctor, but ...", "this is not
  financial advice", or "consult a professional" on a question that needs no professional.

One calibrated qualifier ("usually", "about 60 minutes", "rain may arrive by evening") is
not hedging, and a referral on a risky question (a seizure, a dog bite) is warranted.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from prefline.text.words import count_words, lower_rx, prepare

# Each occurrence is one hedge. "may" as the month and "could you" (a request) are not hedges.
HEDGE = lower_rx(
    r"(?=[a-z])\b(?:might|may(?<!\bin may)(?<!\bof may)(?<!\bearly may)(?<!\blate may)(?!\s+\d)|could(?!\s+(?:you|not)\b)|perhaps|possibly|maybe|probably"
    r"|conceivably|arguably|presumably|seemingly|apparently|potentially|plausibly|likely|somewhat|tentatively"
    r"|more or less|give or take|sort of|kind of|or so|to (?:some|a certain) extent|in (?:some|certain|many) (?:cases|sense|ways|circumstances|respects)"
    r"|generally speaking|it (?:would )?seems?|seems? (?:like|that|to)|it appears|I (?:think|believe|guess|suppose|feel like)"
    r"|if I had to guess|as far as I know|not (?:entirely |completely |totally |100% |quite )?(?:sure|certain)"
    r"|(?:I )?could be (?:wrong|mistaken)|(?:I )?(?:may|might) (?:well )?be (?:wrong|mistaken|oversimplifying)"
    r"|(?:hard|difficult|tricky) to (?:say|tell|be (?:sure|certain|definitive))|it (?:really )?depends|depending on"
    r"|no definitive answer|open to interpretation|opinions (?:vary|differ)|some (?:might|would|could) (?:say|argue)"
    r"|others (?:might|could|would) argue|with a grain of salt|can't say (?:definitively|for (?:certain|sure))"
    r"|it(?:'s| is) (?:possible|conceivable) that|I wouldn't want to say)\b"
)
STACK_GAP_CHARS = 12  # two hedges this close ("might possibly", "could, perhaps,") are stacked
HEDGES_MIN = 3  # this many hedges in one response is hedging whatever its length
RATE_MIN = 6.0  # or two or more at this many per 100 words
_SENTENCE_END = re.compile(r"[.!?\n]")

DISCLAIMERS: dict[str, re.Pattern[str]] = {
    name: lower_rx(pattern)
    for name, pattern in {
        "as-an-ai": r"\b(?:as an? (?:AI|artificial intelligence)(?: (?:language )?model| assistant| system| chatbot)?"
                    r"|as an? (?:large )?language model|I(?:'m| am) (?:just |only |merely |simply )?an? (?:AI|artificial intelligence|language model|large language model|chatbot|virtual assistant)"
                    r"|being an AI)\b(?!\s+(?:researcher|engineer|scientist|company|startup|ethicist|expert|developer|lab|pioneer))"
                    r"|\bI don't (?:have|experience) (?:personal |any )?(?:opinions|experiences|feelings|preferences|favou?rites|taste buds|emotions)\b"
                    r"|\bmy (?:training data|knowledge cutoff)\b",
        "not-a-professional": r"\b(?:I(?:'m| am)|while I(?:'m| am)) not an? (?:licensed |certified |qualified )?(?:doctor|physician|lawyer|attorney|medical professional|legal professional"
                              r"|financial (?:advis[eo]r|professional|planner)|professional|expert|veterinarian|vet|therapist|nutritionist|dietitian|pharmacist"
                              r"|accountant|tax professional|teacher|math teacher|mechanic|engineer|specialist)\b",
        "not-advice": r"(?:\bnot|n't|\bdoes not constitute|doesn't constitute) (?:professional |personal(?:ized)? )?(?:medical|legal|financial|investment|tax|professional|career) advice\b"
                      r"|\bfor (?:general )?informational purposes only\b|\bdisclaimer\b"
                      r"|\b(?:my answers|my responses|this information|this answer) (?:may|might|could) (?:contain errors|be (?:inaccurate|outdated|wrong|incomplete))"
                      r"|\b(?:please )?(?:verify|double-check|confirm) (?:this|it) with a (?:reliable|trusted|authoritative|reputable) source\b",
    }.items()
}
# Every disclaimer pattern contains one of these strings; checking for them first is far
# cheaper than the patterns themselves.
_NEEDLES = {
    "as-an-ai": ("as a", " ai", "language model", "artificial intelligence", "chatbot", "virtual assistant",
                 "don't have", "don't experience", "my training", "knowledge cutoff"),
    "not-a-professional": ("not a",),
    "not-advice": ("advice", "informational", "disclaimer", "my answers", "my responses", "this information", "this answer",
                   "verify", "double-check", "confirm"),
}
# A referral to a professional: a disclaimer only where the question carries no risk.
REFERRAL = lower_rx(
    r"\b(?:consult(?:ing)?|seek(?:ing)? (?:the )?(?:help|advice|guidance) (?:of|from)|speak(?:ing)? (?:with|to)|talk(?:ing)? (?:with|to)"
    r"|check(?:ing)? with|see|ask|contact|reach(?:ing)? out to)\s+(?:a|an|your|the)?\s*"
    r"(?:(?:qualified|licensed|certified|trained|local|professional|medical|financial|legal)\s+)*"
    r"(?:professional|expert|specialist|doctor|physician|lawyer|attorney|advis[eo]r|accountant|technician|nutritionist"
    r"|dietitian|chef|gardener|astronomer|pharmacist|veterinarian|vet|therapist|mechanic|electrician|plumber|engineer)s?\b"
)
LOW_RISK = "none"  # the value of the ``risk`` slice on items that need no professional


def detect_hedging(text: str, low_risk: bool | None = None) -> dict[str, Any]:
    """Hedges, stacked qualifiers and disclaimers in ``text``.

    ``low_risk``: True when the question needs no professional (then "consult a professional"
    is a disclaimer), False when it does, None when unknown (referrals are not counted).
    Returns the counts and flags with the matched text.
    """
    prepared = prepare(text)
    clean = prepared.lower  # every pattern here reads lower-cased text
    words = count_words(clean)
    hedges = list(HEDGE.finditer(clean))
    stacked = [
        f"{a.group(0)} .. {b.group(0)}"
        for a, b in pairwise(hedges)
        if b.start() - a.end() <= STACK_GAP_CHARS and not _SENTENCE_END.search(clean, a.end(), b.start())
    ]
    disclaimers = {name: m.group(0) for name, p in DISCLAIMERS.items()
                   if any(n in clean for n in _NEEDLES[name]) and (m := p.search(clean))}
    referral = REFERRAL.search(clean)
    if referral and low_risk:
        disclaimers["unwarranted-referral"] = referral.group(0)
    rate = 100.0 * len(hedges) / words if words else 0.0
    hedged = bool(stacked) or len(hedges) >= HEDGES_MIN or (len(hedges) >= 2 and rate >= RATE_MIN)
    return {
        "hedged": hedged,
        "disclaimer": bool(disclaimers),
        "hedges": len(hedges),
        "hedges_per_100_words": round(rate, 2),
        "words": words,
        "matched": [m.group(0) for m in hedges[:10]],
        "stacked": stacked[:5],
        "disclaimers": disclaimers,
        "referral_counted": None if low_risk is None else bool(low_risk),
    }
