"""Coverage and bias profile: what each slice holds against a target mixture, and how the data leans.

Slices are the free tags of each pair (``intent``, ``difficulty``, ``risk``, ``tool_use``,
``long_context``, ``surface``, ...). A targets file names the least share, or the least
number of pairs, that a slice value should hold::

    # targets.yaml
    tolerance: 0.02          # a share below its target by at most this much is not a shortfall
    min_pairs: 20            # floor for every value listed below that sets none of its own
    slices:
      intent:
        coding: 0.25         # shorthand for {share: 0.25}
        factual: {share: 0.25, min_pairs: 100}
      surface:
        voice: {min_pairs: 50}

Every value below its target is a *shortfall*, named with the pairs it lacks: the number of
pairs of that value to add before it reaches its share ``s``, ``(s * n - count) / (1 - s)``
(adding them also grows ``n``), or its ``min_pairs``, whichever is more.

Pairs store their slices as JSON text; only the distinct texts are parsed, so the cost
does not grow with the number of pairs.

The bias profile compares the chosen with the rejected responses, overall and per source
and slice: how often the chosen one is longer, and how often each side refuses, hedges or
cites, by the detectors the eval scorers use too (``prefline.text``: refusal, hedging,
citation markers). A share lopsided past the
documented thresholds (``prefline.data.quality.Thresholds``) is a warning: such data can
teach a style instead of the decision the pairs are about. Judge position bias comes from
the signals the dataset was built from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from prefline.config import StrictModel, load_yaml
from prefline.stats import wilson
from prefline.text.citations import find_markers
from prefline.text.hedging import detect_hedging
from prefline.text.refusal import detect_refusal

# The slice keys a preference dataset is expected to be tagged with; the report says which are missing.
STANDARD_KEYS = ("intent", "difficulty", "risk", "tool_use", "long_context", "surface")


class SliceTarget(StrictModel):
    share: float | None = Field(None, ge=0, lt=1, description="Least share of all pairs (0 to 1, exclusive) that should carry this value.")
    min_pairs: int | None = Field(None, ge=0, description="Least number of pairs that should carry this value (overrides the file's min_pairs).")


class CoverageTargets(StrictModel):
    """A target mixture: per slice key, per value, a least share and/or a least count."""

    tolerance: float = Field(0.0, ge=0, lt=1, description="A share below its target by at most this much is not a shortfall. Default 0.")
    min_pairs: int = Field(0, ge=0, description="Least pairs for every listed value without its own min_pairs. Default 0 (none).")
    slices: dict[str, dict[str, SliceTarget]] = Field(default_factory=dict, description="slice key -> value -> target.")

    @field_validator("slices", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {key: {v: {"share": t} if isinstance(t, (int, float)) and not isinstance(t, bool) else t for v, t in values.items()}
                if isinstance(values, dict) else values for key, values in value.items()}

    @model_validator(mode="after")
    def _shares_fit(self) -> CoverageTargets:
        for key, values in self.slices.items():
            total = sum(t.share or 0.0 for t in values.values())
            if total > 1.0 + 1e-9:
                raise ValueError(f"slices.{key}: target shares sum to {total:g}, more than 1")
        return self


def load_targets(path: str | Path) -> CoverageTargets:
    """Read and validate a targets file; errors name the file and the field."""
    return load_yaml(path, CoverageTargets)


def parse_slices(texts: list[str | None]) -> list[dict[str, str]]:
    """Distinct ``slices`` JSON texts -> dicts (a missing or unreadable one is no tags)."""
    parsed = []
    for text in texts:
        try:
            value = json.loads(text) if text else {}
        except (TypeError, ValueError):
            value = {}
        parsed.append({str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {})
    return parsed


def slice_groups(slices: list[dict[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    """(key, value) -> the codes of the distinct slice dicts that carry it."""
    groups: dict[tuple[str, str], list[int]] = {}
    for code, tags in enumerate(slices):
        for key, value in tags.items():
            groups.setdefault((key, value), []).append(code)
    return {kv: np.array(codes, dtype=np.int64) for kv, codes in sorted(groups.items())}


def coverage(code_counts: np.ndarray, slices: list[dict[str, str]], targets: CoverageTargets | None = None) -> dict[str, Any]:
    """Counts per slice key and value, the untagged count per key, and shortfalls against ``targets``.

    ``code_counts[c]`` is the number of pairs whose slices are ``slices[c]``.
    """
    n = int(code_counts.sum())
    counts: dict[str, dict[str, int]] = {}
    for (key, value), codes in slice_groups(slices).items():
        counts.setdefault(key, {})[value] = int(code_counts[codes].sum())
    keys = sorted(counts, key=lambda k: (k not in STANDARD_KEYS, STANDARD_KEYS.index(k) if k in STANDARD_KEYS else 0, k))
    section: dict[str, Any] = {
        "pairs": n,
        "keys": {k: dict(sorted(counts[k].items(), key=lambda kv: (-kv[1], kv[0]))) for k in keys},
        "untagged": {k: n - sum(counts[k].values()) for k in keys},
        "missing_keys": [k for k in STANDARD_KEYS if k not in counts],
        "targets": [],
        "shortfalls": [],
    }
    if targets is None:
        return section
    for key, values in targets.slices.items():
        for value, target in values.items():
            count = counts.get(key, {}).get(value, 0)
            share = count / n if n else 0.0
            floor = target.min_pairs if target.min_pairs is not None else targets.min_pairs
            need = max(0, floor - count)
            if target.share is not None and share < target.share - targets.tolerance:
                need = max(need, math.ceil((target.share * n - count) / (1.0 - target.share)))
            row = {"key": key, "value": value, "count": count, "share": round(share, 4),
                   "target_share": target.share, "min_pairs": floor or None, "short_by": need, "shortfall": need > 0}
            section["targets"].append(row)
            if need:
                wanted = " and ".join(filter(None, [f"{target.share:.1%} of pairs" if target.share is not None else "",
                                                    f"{floor} pairs" if floor else ""]))
                section["shortfalls"].append(f"{key}={value}: {count} pairs ({share:.1%}), target {wanted}: short by {need} pairs")
    return section


# --- the bias profile: how the chosen side differs from the rejected one, per source and slice


MARKERS = ("refuses", "hedges", "cites")
# Each style marker's detector (the eval scorers use the same functions) and how its result reads as yes/no.
DETECTORS: dict[str, tuple[Callable, Callable[[Callable, str], bool]]] = {
    "refuses": (detect_refusal, lambda fn, text: bool(fn(text)[0])),
    "hedges": (detect_hedging, lambda fn, text: bool(fn(text).get("hedged"))),
    "cites": (find_markers, lambda fn, text: bool(fn(text, []))),
}


@dataclass
class Detector:
    """One style marker, detected by the evaluation stage's own function."""

    name: str
    origin: str
    fn: Callable[[str], bool]

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.fromiter((self.fn(text) for text in texts), dtype=bool, count=len(texts))


def style_detectors() -> dict[str, Detector]:
    """The style detectors, by marker name."""
    return {name: Detector(name, f"{fn.__module__}.{fn.__name__}", lambda text, fn=fn, read=read: read(fn, text))
            for name, (fn, read) in DETECTORS.items()}


def groups(sources: list[str], source_code: np.ndarray, slices: list[dict[str, str]], slices_code: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Boolean masks of the pairs in each source and each ``key=value`` slice."""
    by_source = {name or "(none)": source_code == code for code, name in enumerate(sources)}
    by_slice = {}
    for (key, value), codes in slice_groups(slices).items():
        member = np.zeros(len(slices), dtype=bool)
        member[codes] = True
        by_slice[f"{key}={value}"] = member[slices_code]
    return {"by_source": dict(sorted(by_source.items())), "by_slice": by_slice}


def bias_stats(mask: np.ndarray | slice, chosen_words: np.ndarray, rejected_words: np.ndarray,
               markers: dict[str, tuple[np.ndarray, np.ndarray]], sampled: np.ndarray) -> dict[str, Any]:
    """Length and style-marker shares of the chosen and rejected responses of the pairs in ``mask``.

    ``length_ratio_mean`` is the mean over pairs of chosen words / rejected words (a rejected
    response without words counts as one word); ties are neither longer nor shorter. Style
    markers are measured on the ``sampled`` pairs only (``marker_pairs`` of them).
    """
    c, r = chosen_words[mask], rejected_words[mask]
    n = int(c.size)
    longer = int((c > r).sum())
    stats: dict[str, Any] = {"pairs": n}
    if n == 0:
        return stats
    ratio = c / np.maximum(r, 1)
    stats.update({"chosen_longer": round(longer / n, 4), "chosen_longer_ci": wilson(longer, n),
                  "chosen_shorter": round(float((c < r).mean()), 4),
                  "length_ratio_mean": round(float(ratio.mean()), 4), "length_ratio_median": round(float(np.median(ratio)), 4),
                  "chosen_words_mean": round(float(c.mean()), 2), "rejected_words_mean": round(float(r.mean()), 2)})
    if markers:
        in_sample = sampled[mask]
        m = int(in_sample.sum())
        stats["marker_pairs"] = m
        for name, (chosen, rejected) in markers.items():
            if m:
                hits = int(chosen[mask][in_sample].sum())
                stats[f"chosen_{name}"] = round(hits / m, 4)
                stats[f"chosen_{name}_ci"] = wilson(hits, m)
                stats[f"rejected_{name}"] = round(float(rejected[mask][in_sample].mean()), 4)
    return stats


def bias_warnings(label: str, stats: dict[str, Any], thresholds, overall: bool) -> list[str]:
    """The ways ``stats`` is lopsided enough to teach a style rather than a decision (see ``Thresholds``)."""
    t = thresholds
    out: list[str] = []
    if not stats.get("pairs") or (not overall and stats["pairs"] < t.min_pairs):
        return out
    longer, shorter = stats["chosen_longer"], stats["chosen_shorter"]
    if longer > t.chosen_longer_max:
        out.append(f"{label}: the chosen response is longer in {longer:.0%} of pairs (> {t.chosen_longer_max:.0%}), "
                   f"mean length ratio {stats['length_ratio_mean']:.2f}: the data may teach length rather than the decision")
    elif shorter > t.chosen_shorter_max:
        out.append(f"{label}: the chosen response is shorter in {shorter:.0%} of pairs (> {t.chosen_shorter_max:.0%}), "
                   f"mean length ratio {stats['length_ratio_mean']:.2f}: the data may teach brevity rather than the decision")
    for name, verb in (("refuses", "refuse"), ("hedges", "hedge"), ("cites", "cite")):
        if f"chosen_{name}" not in stats or (not overall and stats["marker_pairs"] < t.min_pairs):
            continue
        chosen, rejected = stats[f"chosen_{name}"], stats[f"rejected_{name}"]
        if abs(chosen - rejected) > t.marker_gap:
            lesson = f"to {verb}" if chosen > rejected else f"not to {verb}"
            out.append(f"{label}: {chosen:.0%} of chosen responses {verb} vs {rejected:.0%} of "
                       f"rejected ones (gap > {t.marker_gap:.0%}): the data may teach {lesson} as a style")
    return out


def bias_profile(features, thresholds, ratio_bins: np.ndarray) -> dict[str, Any]:
    """The report's bias section, overall and per source and slice, with its warnings."""
    args = (features.chosen_words, features.rejected_words, features.markers, features.sampled)
    overall = bias_stats(slice(None), *args)
    section: dict[str, Any] = {"overall": overall, "by_source": {}, "by_slice": {}}
    warnings = bias_warnings("overall", overall, thresholds, overall=True)
    for kind, masks in groups(features.sources, features.source_code, features.slices, features.slices_code).items():
        for label, mask in masks.items():
            section[kind][label] = bias_stats(mask, *args)
            warnings += bias_warnings(f"{'source=' if kind == 'by_source' else ''}{label}", section[kind][label], thresholds, overall=False)
    ratio = np.log2(np.maximum(features.chosen_words, 1) / np.maximum(features.rejected_words, 1))
    counts, _ = np.histogram(np.clip(ratio, ratio_bins[0], ratio_bins[-1]), bins=ratio_bins)
    section["length_ratio_log2_histogram"] = {"edges": [round(float(e), 3) for e in ratio_bins], "counts": counts.tolist()}
    section["warnings"] = warnings
    return section


def position_bias(pairs_path: str | Path | None, thresholds) -> dict[str, Any] | None:
    """How often judges preferred whichever response they were shown first; None without judge signals.

    Read from ``signals.parquet`` beside the pairs (ingest keeps every signal there, the
    excluded ones too; with a ``kind`` column, only judge signals are looked at). A judge signal asked in both orders (``meta.verdict_ab``: A shown
    first, ``meta.verdict_ba``: B shown first) holds two judgements; a signal with a
    ``position`` (or ``winner_position``) key holds one: where its preferred response was
    shown (first/second, A/B, left/right, or 0/1). Ties hold none. An unbiased judge picks
    the first position in about half of its judgements.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = Path(pairs_path).with_name("signals.parquet") if pairs_path else None
    if path is None or not path.is_file() or "signal" not in pq.ParquetFile(path).schema_arrow.names:
        return None
    tallies: dict[str, dict[str, list[int]]] = {"overall": {}, "by_judge": {}, "by_source": {}, "by_slice": {}}
    n_signals = 0
    for batch in _judged_batches(pq.ParquetFile(path)):
        text = pc.fill_null(batch.column("signal"), "")
        maybe = pc.or_(pc.match_substring(text, "verdict_ab"), pc.match_substring(text, "position"))
        for raw in text.filter(maybe).to_pylist():
            signal = json.loads(raw)
            first, total = _picks(signal)
            if not total:
                continue
            n_signals += 1
            labels = [("overall", "overall"), ("by_judge", str(signal.get("annotator") or "(unnamed)")),
                      ("by_source", str(signal.get("source") or "(none)"))]
            labels += [("by_slice", f"{k}={v}") for k, v in sorted((signal.get("slices") or {}).items())]
            for kind, label in labels:
                tally = tallies[kind].setdefault(label, [0, 0])
                tally[0] += first
                tally[1] += total
    if not n_signals:
        return None

    def stats(first: int, total: int) -> dict[str, Any]:
        return {"judgements": total, "first_share": round(first / total, 4), "first_share_ci": wilson(first, total)}

    section: dict[str, Any] = {"signals": n_signals, **stats(*tallies["overall"]["overall"])}
    warnings = []
    for kind in ("by_judge", "by_source", "by_slice"):
        section[kind] = {label: stats(*tally) for label, tally in sorted(tallies[kind].items())}
    for kind, label, s in [("overall", "overall", section)] + [(k, label, s) for k in ("by_judge", "by_source", "by_slice")
                                                                for label, s in section[k].items()]:
        if (kind == "overall" or s["judgements"] >= thresholds.min_pairs) and abs(s["first_share"] - 0.5) > thresholds.position_skew:
            name = label if kind in ("overall", "by_slice") else f"{kind[3:]}={label}"
            warnings.append(f"{name}: judges picked the first-shown response in {s['first_share']:.0%} of {s['judgements']} "
                            f"judgements (more than {thresholds.position_skew:.0%} from 50%): position bias in the labels")
    section["warnings"] = warnings
    return section


def _judged_batches(handle):
    """Batches of the row groups that hold judge signals (signal texts hold whole conversations:
    with a ``kind`` column, only the row groups with a judge signal are read)."""
    import pyarrow.compute as pc

    if "kind" not in handle.schema_arrow.names:
        yield from handle.iter_batches(columns=["signal"], batch_size=8192)
        return
    judge = np.asarray(pc.fill_null(pc.equal(handle.read(columns=["kind"]).column("kind"), "judge"), False))
    end = 0
    for group in range(handle.metadata.num_row_groups):
        start, end = end, end + handle.metadata.row_group(group).num_rows
        if judge[start:end].any():
            yield from handle.read_row_group(group, columns=["signal"]).to_batches()


def _picks(signal: dict[str, Any]) -> tuple[int, int]:
    """(judgements that picked the first-shown response, judgements with a position) of one signal."""
    meta = signal.get("meta") or {}
    if "verdict_ab" in meta or "verdict_ba" in meta:
        ab, ba = meta.get("verdict_ab"), meta.get("verdict_ba")
        first = int(ab == "a") + int(ba == "b")
        return first, int(ab in ("a", "b")) + int(ba in ("a", "b"))
    position = signal.get("position", signal.get("winner_position"))
    if position is None or isinstance(position, bool):
        return 0, 0
    text = str(position).strip().lower()
    if text in ("0", "first", "a", "1st", "left"):
        return 1, 1
    if text in ("1", "second", "b", "2nd", "right"):
        return 0, 1
    return 0, 0
