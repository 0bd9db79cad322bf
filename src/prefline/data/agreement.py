"""Agreement between annotators: Krippendorff's alpha and pairwise percent agreement,
per dataset, per slice, per axis and per annotator, with outlying annotators flagged.

A *vote* is (item, annotator, label): an item is a signal group (one prompt and two responses),
labels are ``a``, ``b``, ``tie`` (nominal). A ratings signal contributes one vote per rater who
rated both responses; any other signal one vote, from its annotator (or its ``kind:rule``).

- **alpha**: Krippendorff's alpha, nominal, from the ``krippendorff`` package; None when it is
  undefined (no item with two votes, or a single label used throughout).
- **percent agreement**: over every two votes on the same item, the share that match.
- **flagged annotators**: an annotator whose agreement with the others (over at least
  ``min_pairs`` vote pairs) is more than ``flag_margin`` below the median of all such annotators.
  A fixed margin rather than a multiple of the spread: with a handful of annotators the spread
  is itself too noisy to scale by.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from statistics import median
from typing import Any

from prefline.data.consensus import worker_of
from prefline.data.schema import LABELS, Signal

Vote = tuple[str, str, str]


def votes_of(signals: list[Signal], axis: str | None = None) -> list[Vote]:
    """The votes behind signals (on one ``axis``, or the overall choice); one per annotator and item."""
    seen: set[tuple[str, str]] = set()
    votes = []
    for signal in signals:
        if signal.excluded:
            continue
        if axis is not None:
            cast = [(worker_of(signal), signal.axes[axis])] if axis in signal.axes else []
        elif signal.votes:
            cast = [(vote["annotator"], vote["label"]) for vote in signal.votes]
        else:
            cast = [(worker_of(signal), signal.label)]
        for annotator, label in cast:
            if (signal.key, annotator) not in seen:
                seen.add((signal.key, annotator))
                votes.append((signal.key, annotator, label))
    return votes


def _by_item(votes: list[Vote]) -> dict[str, list[tuple[str, str]]]:
    items: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for item, annotator, label in votes:
        items[item].append((annotator, label))
    return items


def krippendorff_alpha(votes: list[Vote]) -> float | None:
    """Nominal Krippendorff's alpha of the votes (annotators x items), or None where undefined."""
    import numpy as np

    items = {item: cast for item, cast in _by_item(votes).items() if len(cast) >= 2}
    if not items or len({label for cast in items.values() for _, label in cast}) < 2:
        return None
    import krippendorff

    annotators = sorted({a for cast in items.values() for a, _ in cast})
    row = {a: i for i, a in enumerate(annotators)}
    data = np.full((len(annotators), len(items)), np.nan)
    for column, cast in enumerate(items.values()):
        for annotator, label in cast:
            data[row[annotator], column] = LABELS.index(label)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def percent_agreement(votes: list[Vote]) -> tuple[float | None, int]:
    """(share of matching vote pairs on the same item, number of pairs); None with no pairs."""
    agree = total = 0
    for cast in _by_item(votes).values():
        for (_, x), (_, y) in combinations(cast, 2):
            total += 1
            agree += x == y
    return (agree / total if total else None), total


def summary(votes: list[Vote]) -> dict[str, Any]:
    items = _by_item(votes)
    share, pairs = percent_agreement(votes)
    alpha = krippendorff_alpha(votes)
    return {"n_items": len(items), "n_items_multi": sum(len(c) >= 2 for c in items.values()), "n_votes": len(votes),
            "n_annotators": len({a for _, a, _ in votes}), "alpha": None if alpha is None else round(alpha, 6),
            "percent_agreement": None if share is None else round(share, 6), "n_vote_pairs": pairs}


def per_annotator(votes: list[Vote], flag_margin: float = 0.2, min_pairs: int = 5) -> dict[str, dict[str, Any]]:
    """Each annotator's votes, agreement with the others, alpha without them, and whether they are flagged."""
    items = _by_item(votes)
    stats: dict[str, dict[str, Any]] = {}
    for annotator in sorted({a for _, a, _ in votes}):
        agree = pairs = 0
        for cast in items.values():
            mine = [label for a, label in cast if a == annotator]
            if not mine:
                continue
            for other, label in cast:
                if other != annotator:
                    pairs += 1
                    agree += label == mine[0]
        without = krippendorff_alpha([v for v in votes if v[1] != annotator])
        stats[annotator] = {"n_votes": sum(v[1] == annotator for v in votes), "n_vote_pairs": pairs,
                            "agreement_with_others": round(agree / pairs, 6) if pairs else None,
                            "alpha_without": None if without is None else round(without, 6), "flagged": False, "why": None}
    rated = [s["agreement_with_others"] for s in stats.values() if s["n_vote_pairs"] >= min_pairs]
    if len(rated) >= 2:
        middle = median(rated)
        for annotator, s in stats.items():
            if s["n_vote_pairs"] >= min_pairs and s["agreement_with_others"] < middle - flag_margin:
                s["flagged"] = True
                s["why"] = (f"agrees with the others on {s['agreement_with_others']:.2f} of {s['n_vote_pairs']} vote pairs, "
                            f"more than {flag_margin:g} below the median annotator ({middle:.2f})")
    return stats


def agreement_report(signals: list[Signal], flag_margin: float = 0.2, min_pairs: int = 5) -> dict[str, Any]:
    """Agreement overall, per slice (``key=value``), per axis and per annotator."""
    votes = votes_of(signals)
    slices_of: dict[str, dict[str, str]] = {}
    for signal in signals:
        merged = slices_of.setdefault(signal.key, {})
        for k, v in signal.slices.items():
            merged.setdefault(k, v)
    by_slice: dict[str, list[Vote]] = defaultdict(list)
    for vote in votes:
        for k, v in slices_of.get(vote[0], {}).items():
            by_slice[f"{k}={v}"].append(vote)
    axes = sorted({axis for s in signals if not s.excluded for axis in s.axes})
    return {
        "overall": summary(votes),
        "slices": {name: summary(group) for name, group in sorted(by_slice.items())},
        "axes": {axis: summary(votes_of(signals, axis)) for axis in axes},
        "annotators": per_annotator(votes, flag_margin, min_pairs),
        "rule": {"flag_margin": flag_margin, "min_pairs": min_pairs},
    }
