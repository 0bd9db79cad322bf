"""Scalar ratings -> pairs: two responses to one prompt make a pair when their scores differ enough.

Two row layouts, both validated per row:

- one prompt per row: ``{"prompt", "responses": [{"text", "ratings": ...}, ...], "slices"}``, where a
  response's ``ratings`` is a number (one anonymous overall rating), an object of axes
  (``{"overall": 4, "tone": 3}``, one anonymous rater), or a list of raters
  (``[{"annotator": "r1", "overall": 4, "tone": 3}, ...]``);
- one rating per row (CSV-friendly): ``{"prompt", "response", "rating", "annotator", "axis",
  "prompt_id", "response_id"}``; rows of one prompt (same ``prompt_id``, else same prompt text)
  are gathered, wherever they are in the file.

A response's score is the mean, over its raters, of each rater's score (``ratings.score`` says which
rating that is). Every two responses of a prompt are compared once: equal scores are ties, gaps
below ``ratings.margin`` are too small, and of the rest the ``ratings.max_pairs_per_prompt`` largest
gaps make pairs. All four are counted. Each pair carries the labels of the raters who rated both
responses (its ``votes``) and a confidence scaled by the share of them that agree with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from prefline.data.schema import RowError, Signal, check_slices, optional_text, prompt_messages, reply_messages
from prefline.data.signals import Fate, KindContext, RatingsRules, signal_kind
from prefline.data.sources import RawRecord
from prefline.hashing import content_hash


@dataclass
class _Response:
    text: list[dict[str, str]]
    raters: dict[str, dict[str, float]] = field(default_factory=dict)  # annotator ("" if unknown) -> axis -> rating
    lines: list[int] = field(default_factory=list)


def _number(value: Any, where: str, rules: RatingsRules) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RowError(f"{where} must be a number, got {value!r}")
    if rules.scale is not None and not rules.scale[0] <= value <= rules.scale[1]:
        raise RowError(f"{where} = {value:g} is outside the rating scale [{rules.scale[0]:g}, {rules.scale[1]:g}] (ratings.scale)")
    return float(value)


def _axes(value: Any, where: str, rules: RatingsRules) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise RowError(f"{where} must be a number or a non-empty object of axis ratings, got {value!r}")
    return {str(axis): _number(v, f"{where}.{axis}", rules) for axis, v in value.items()}


def _raters(value: Any, where: str, rules: RatingsRules) -> dict[str, dict[str, float]]:
    """A response's ratings in any of the three forms -> annotator -> axis -> rating."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"": {"overall": _number(value, where, rules)}}
    if isinstance(value, dict):
        return {"": _axes(value, where, rules)}
    if not isinstance(value, list):
        raise RowError(f"{where} must be a number, an object of axes or a list of raters, got {type(value).__name__}")
    raters: dict[str, dict[str, float]] = {}
    for index, rater in enumerate(value):
        if not isinstance(rater, dict):
            raise RowError(f"{where}[{index}] must be an object with 'annotator' and axis ratings")
        annotator = optional_text(rater, "annotator") or ""
        if annotator in raters:
            raise RowError(f"{where}[{index}]: annotator {annotator or '(unnamed)'!r} rates this response twice")
        raters[annotator] = _axes({k: v for k, v in rater.items() if k != "annotator"}, f"{where}[{index}]", rules)
    return raters


def rater_score(axes: dict[str, float], rules: RatingsRules) -> float | None:
    """One rater's score for a response, as ``ratings.score`` says; None when that rating is missing."""
    if rules.score == "auto":
        return axes["overall"] if "overall" in axes else sum(axes.values()) / len(axes)
    if rules.score == "mean":
        values = [v for axis, v in axes.items() if axis != "overall"]
        return sum(values) / len(values) if values else None
    return axes.get(rules.score)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _label(difference: float) -> str:
    return "a" if difference > 0 else "b" if difference < 0 else "tie"


def compare(prompt: list, responses: list[_Response], rules: RatingsRules, ctx: KindContext,
            slices: dict[str, str], source: str) -> list[Signal]:
    """Every two rated responses compared once; the pairs that pass the margin and the cap, as signals."""
    scored = []
    for response in responses:
        scores = {name: s for name, axes in response.raters.items() if (s := rater_score(axes, rules)) is not None}
        if scores:
            scored.append((response, scores, sum(scores.values()) / len(scores)))
        else:
            ctx.stats["ratings.unscored_responses"] += 1
    eligible = []
    for (i, (ra, sa, ma)), (j, (rb, sb, mb)) in combinations(enumerate(scored), 2):
        ctx.stats["ratings.candidates"] += 1
        gap = ma - mb
        if gap == 0:
            ctx.stats["ratings.ties"] += 1
        elif abs(gap) < rules.margin:
            ctx.stats["ratings.below_margin"] += 1
        else:
            eligible.append((abs(gap), i, j))
    eligible.sort(key=lambda e: (-e[0], e[1], e[2]))
    ctx.stats["ratings.over_cap"] += max(0, len(eligible) - rules.max_pairs_per_prompt)
    signals = []
    for gap, i, j in eligible[: rules.max_pairs_per_prompt]:
        (ra, sa, ma), (rb, sb, mb) = scored[i], scored[j]
        label = _label(ma - mb)
        votes = [{"annotator": name, "label": _label(sa[name] - sb[name])} for name in sorted(set(sa) & set(sb)) if name]
        agreeing = sum(vote["label"] == label for vote in votes)
        if votes and not agreeing:
            ctx.stats["ratings.contradicted"] += 1  # every rater who saw both disagrees with the order of the means
            continue
        axes = {}
        for axis in sorted({a for axes in ra.raters.values() for a in axes} & {a for axes in rb.raters.values() for a in axes} - {"overall"}):
            left = _mean([axes[axis] for axes in ra.raters.values() if axis in axes])
            right = _mean([axes[axis] for axes in rb.raters.values() if axis in axes])
            axes[axis] = _label(left - right)
        try:
            signals.append(Signal(prompt=prompt, a=ra.text, b=rb.text, label=label, kind="ratings", rule=f"rating_gap>={rules.margin:g}",
                                  source=source, axes=axes, votes=votes, slices=slices, lines=sorted(set(ra.lines + rb.lines)),
                                  confidence=rules.confidence * (agreeing / len(votes) if votes else 1.0),
                                  meta={"gap": round(gap, 6), "n_raters": len(set(sa) | set(sb))}))
        except RowError:
            ctx.stats["ratings.identical_responses"] += 1
            continue
        ctx.stats["ratings.pairs"] += 1
    return signals


def _nested(row: dict[str, Any], line: int, ctx: KindContext) -> tuple[list, list[_Response]]:
    prompt = prompt_messages(row["prompt"]) if "prompt" in row else None
    if prompt is None:
        raise RowError("missing field(s): 'prompt'")
    items = row["responses"]
    if not isinstance(items, list) or len(items) < 2:
        raise RowError("'responses' must be a list of at least two rated responses")
    responses, seen = [], {}
    for index, item in enumerate(items):
        where = f"'responses[{index}]'"
        if not isinstance(item, dict):
            raise RowError(f"{where} must be an object with 'text' and 'ratings'")
        text = item.get("text", item.get("response"))
        if text is None:
            raise RowError(f"{where} has no 'text'")
        reply = reply_messages(text, f"responses[{index}].text")
        digest = content_hash(reply)
        if digest in seen:
            raise RowError(f"{where} repeats the text of responses[{seen[digest]}]")
        seen[digest] = index
        ratings = item.get("ratings", item.get("rating"))
        raters = _raters(ratings, f"'responses[{index}].ratings'", ctx.rules.ratings) if ratings not in (None, []) else {}
        responses.append(_Response(reply, raters, [line]))
    return prompt, responses


@dataclass
class _Group:
    prompt: list
    slices: dict[str, str]
    source: str
    first_line: int
    responses: dict[str, _Response] = field(default_factory=dict)
    seen: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (response, annotator, axis) -> line


def _long_row(row: dict[str, Any], line: int, ctx: KindContext, groups: dict[str, _Group]) -> Fate | None:
    """Fold one rating row into its prompt's group; a Fate when the row repeats an earlier one."""
    missing = [name for name in ("prompt", "response") if name not in row]
    if "rating" not in row and "ratings" not in row:
        missing.append("rating")
    if missing:
        raise RowError(f"missing field(s): {', '.join(repr(m) for m in missing)}")
    prompt = prompt_messages(row["prompt"])
    reply = reply_messages(row["response"], "response")
    annotator = optional_text(row, "annotator") or ""
    axis = optional_text(row, "axis") or "overall"
    if "ratings" in row:
        axes = _axes(row["ratings"], "'ratings'", ctx.rules.ratings)
    else:
        axes = {axis: _number(row["rating"], "'rating'", ctx.rules.ratings)}
    slices = check_slices(row.get("slices"), ctx.rules.slices)
    group_id = optional_text(row, "prompt_id") or content_hash(prompt)
    group = groups.get(group_id)
    if group is None:
        group = groups[group_id] = _Group(prompt, slices, optional_text(row, "source") or ctx.source, line)
    elif group.prompt != prompt:
        raise RowError(f"prompt_id {group_id!r} has a different prompt at line {group.first_line}")
    response_id = optional_text(row, "response_id") or content_hash(reply)
    response = group.responses.setdefault(response_id, _Response(reply))
    if response.text != reply:
        raise RowError(f"response_id {response_id!r} has a different text at line {response.lines[0]}")
    for name in axes:
        earlier = group.seen.get((response_id, annotator, name))
        if earlier is not None:
            return Fate(line, "duplicate", "duplicate", f"duplicate of line {earlier}: {annotator or 'an unnamed rater'} already rated {name} of this response")
    for name, value in axes.items():
        group.seen[(response_id, annotator, name)] = line
        response.raters.setdefault(annotator, {})[name] = value
    response.lines.append(line)
    return None


@signal_kind("ratings", unused_reason="no pair from this prompt's ratings: ties, gaps below ratings.margin or over the cap (counted in the stats)",
             fields=("prompt", "responses", "slices", "source", "response", "rating", "ratings", "annotator", "axis",
                     "prompt_id", "response_id"))
def read_ratings(records: Iterable[RawRecord], ctx: KindContext) -> Iterator[Signal | Fate]:
    rules = ctx.rules.ratings
    groups: dict[str, _Group] = {}
    for record in records:
        row = record.row
        try:
            if not isinstance(row, dict):
                raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
            if "responses" in row:
                prompt, responses = _nested(row, record.line, ctx)
                slices = check_slices(row.get("slices"), ctx.rules.slices)
                signals = compare(prompt, responses, rules, ctx, slices, optional_text(row, "source") or ctx.source)
                if not signals:
                    yield Fate(record.line, "excluded", "ratings-no-pair", "no pair: every two responses tie, differ by less than "
                               f"ratings.margin ({rules.margin:g}) or contradict their raters", record.raw)
                yield from signals
            else:
                fate = _long_row(row, record.line, ctx, groups)
                if fate is not None:
                    fate.raw = record.raw
                    yield fate
        except RowError as exc:
            yield Fate(record.line, "rejected", "invalid", str(exc), record.raw)
    for group in groups.values():
        yield from compare(group.prompt, list(group.responses.values()), rules, ctx, group.slices, group.source)

