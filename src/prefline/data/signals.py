"""Signal kinds: each turns a stream of records into :class:`Signal` objects (or :class:`Fate` s).

A signal kind is a generator registered under a name in ``SIGNAL_KINDS``. It receives the
records a reader could parse and yields, for each, either signals (each naming the record
lines it came from) or a :class:`Fate` saying why the record yields none. Kinds whose
records stand alone (``pairs``, ``pairwise``, ``judge``) answer record by record; kinds that
need several records (``ratings`` of one prompt, ``events`` of one session) answer once
they have seen them. A record that ends in neither is excluded by ingest with the kind's
``unused_reason``, so every record is accounted for.

The rules a kind applies come from an ingest rules file (:class:`IngestRules`, YAML), whose
fields are documented here, once, with their defaults.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from prefline.config import StrictModel
from prefline.data.schema import (
    RowError, Signal, check_slices, optional_text, pair_fields, prompt_messages, reply_messages, require, unit_weight,
)
from prefline.data.sources import DEFAULT_MAX_ROW_BYTES, RawRecord, ReadOptions
from prefline.registry import Registry

# --- the rules file ---------------------------------------------------------------------------

AXES = ("correctness", "completeness", "tone", "safety", "format")
EVENT_TYPES = ("response", "accept", "edit", "regenerate", "reask", "thumbs_up", "thumbs_down", "escalate", "abandon")
FeedbackEvent = Literal["accept", "regenerate", "reask", "thumbs_up", "thumbs_down", "escalate", "abandon"]


class LimitsRules(StrictModel):
    max_row_bytes: int = Field(DEFAULT_MAX_ROW_BYTES, ge=64, description=(
        "Largest record, in bytes (a JSONL or CSV line, a Parquet row as JSON), that is read; a larger one is "
        "rejected without being loaded. Default 4 MiB."))


class PairwiseRules(StrictModel):
    axes: list[str] = Field(list(AXES), description=(
        "Axes a pairwise row may choose on beside the overall choice (its 'axes' object); any other axis "
        "name rejects the row. Default: correctness, completeness, tone, safety, format."))


class RatingsRules(StrictModel):
    margin: float = Field(1.0, gt=0, description=(
        "Smallest gap between two responses' scores (mean over raters, in rating points) that makes a pair. "
        "Equal scores are ties: dropped and counted, as are gaps below the margin."))
    max_pairs_per_prompt: int = Field(6, ge=1, description=(
        "Most pairs made from one prompt's responses; the largest gaps are kept, the rest counted as over the cap."))
    score: str = Field("auto", min_length=1, description=(
        "Which rating scores a response: 'auto' (a rater's 'overall' when given, else the mean of their axes), "
        "'mean' (the mean of all their axes, 'overall' excluded), or an axis name."))
    scale: tuple[float, float] | None = Field(None, description=(
        "Valid ratings as [lowest, highest], e.g. [1, 5]; a rating outside rejects its row. Unset: any number."))
    confidence: float = Field(1.0, gt=0, le=1, description=(
        "Confidence of a ratings pair when every rater who rated both responses agrees with the direction; "
        "it is scaled by the share who do."))


class EditRule(StrictModel):
    enabled: bool = Field(True, description="Turn each user edit into a pair: the edited text preferred over the draft.")
    confidence: float = Field(0.9, gt=0, le=1, description="Confidence of an edit pair, in (0, 1].")


class OutcomeRule(StrictModel):
    name: str = Field(min_length=1, description="Recorded on each pair the rule makes (its 'rule').")
    preferred: list[FeedbackEvent] = Field(min_length=1, description="Events that mark a response as the better one.")
    over: list[FeedbackEvent] = Field(min_length=1, description="Events that mark a response as the worse one.")
    confidence: float = Field(gt=0, le=1, description="Confidence of a pair this rule makes, in (0, 1].")
    enabled: bool = Field(True, description="false switches the rule off without deleting it.")

    @model_validator(mode="after")
    def _disjoint(self) -> "OutcomeRule":
        both = sorted(set(self.preferred) & set(self.over))
        if both:
            raise ValueError(f"preferred and over share {', '.join(both)}: an event cannot mark both sides")
        return self


DEFAULT_OUTCOME_RULES = [
    OutcomeRule(name="accepted_over_retried", preferred=["accept", "thumbs_up"], over=["regenerate", "reask"], confidence=0.7),
    OutcomeRule(name="thumbs_up_over_thumbs_down", preferred=["thumbs_up"], over=["thumbs_down"], confidence=0.8),
    OutcomeRule(name="accepted_over_escalated", preferred=["accept", "thumbs_up"], over=["escalate"], confidence=0.6),
    OutcomeRule(name="accepted_over_abandoned", preferred=["accept", "thumbs_up"], over=["abandon"], confidence=0.4),
]


class EventsRules(StrictModel):
    edit_over_draft: EditRule = Field(default_factory=EditRule, description="The user's edit preferred over the model's draft.")
    rules: list[OutcomeRule] = Field(default_factory=lambda: list(DEFAULT_OUTCOME_RULES), description=(
        "Outcome rules, in priority order: two responses in one thread (a response and its retries in one session) "
        "make a pair when one has a 'preferred' event and the other an 'over' event; the first rule that matches names it."))
    max_pairs_per_thread: int = Field(6, ge=1, description="Most outcome pairs made from one thread; later ones are counted as over the cap.")

    @model_validator(mode="after")
    def _unique_names(self) -> "EventsRules":
        names = [rule.name for rule in self.rules]
        repeated = sorted({n for n in names if names.count(n) > 1} | ({"edit_over_draft"} & set(names)))
        if repeated:
            raise ValueError(f"rule names must be unique (edit_over_draft is taken): {', '.join(repeated)}")
        return self


class JudgeRules(StrictModel):
    exclude_position_inconsistent: bool = Field(True, description=(
        "Exclude a judged pair whose verdict changes with the order the responses were shown in (counted as "
        "excluded). false keeps it as a 'tie' vote instead."))
    audit_fraction: float = Field(0.1, ge=0, le=1, description="Share of judged pairs sampled into audit.jsonl for a human to check.")
    audit_seed: int = Field(0, description="Seed of the audit sample (the same seed picks the same pairs).")
    confidence: float = Field(1.0, gt=0, le=1, description="Confidence of a judge's position-consistent verdict, in (0, 1].")


class IngestRules(StrictModel):
    """An ingest rules file (``--rules FILE``): every section optional, every field defaulted."""

    limits: LimitsRules = Field(default_factory=LimitsRules, description="Input limits.")
    slices: dict[str, list[str]] = Field(default_factory=dict, description=(
        "Slice vocabularies: for each listed key, the values a row may use (others reject the row). "
        "Keys not listed are free. Default: none."))
    pairwise: PairwiseRules = Field(default_factory=PairwiseRules, description="Pairwise human choices.")
    ratings: RatingsRules = Field(default_factory=RatingsRules, description="Scalar ratings -> pairs.")
    events: EventsRules = Field(default_factory=EventsRules, description="Implicit user actions -> pairs.")
    judge: JudgeRules = Field(default_factory=JudgeRules, description="Model-judge labels.")

    def read_options(self) -> ReadOptions:
        return ReadOptions(max_row_bytes=self.limits.max_row_bytes)


def load_rules(path: str | Path | None) -> IngestRules:
    """An ingest rules YAML file, validated (the error names the file and every bad field); None: the defaults."""
    if path is None:
        return IngestRules()
    from prefline.config import load_yaml

    return load_yaml(path, IngestRules)


# --- the kind interface -----------------------------------------------------------------------


@dataclass
class Fate:
    """Why a record yields no signal: ``kind`` is "rejected" (invalid) or "excluded" (valid, but unused)."""

    line: int
    kind: str
    category: str
    reason: str
    raw: str | None = None


@dataclass
class KindContext:
    source: str                     # the source label of records that carry none
    rules: IngestRules
    stats: Counter = field(default_factory=Counter)     # kind-specific counts, e.g. "ratings.ties"
    audit: list[dict[str, Any]] = field(default_factory=list)
    unknown: Counter = field(default_factory=Counter)   # field the kind does not use -> records that have it


@dataclass(frozen=True)
class SignalKind:
    name: str
    read: Callable[[Iterable[RawRecord], KindContext], Iterator[Signal | Fate]]
    unused_reason: str = "the record produced no signal"
    # Each record yields exactly one signal or one Fate, at once: without consensus, ingest can
    # store it before reading the next record (it streams the file).
    one_per_record: bool = False
    # The top-level fields a record of this kind may use; any other is kept with the record's
    # signals (``meta["extra"]``) and reported once per file. None: the kind takes any field.
    fields: frozenset[str] | None = None


SIGNAL_KINDS: Registry[SignalKind] = Registry("signal kind")


def signal_kind(name: str, unused_reason: str = "the record produced no signal", one_per_record: bool = False,
                fields: Iterable[str] | None = None):
    """Register a signal kind's reader under ``name`` (``--signal NAME``)."""
    return SIGNAL_KINDS.decorator(name, lambda fn: SignalKind(name, fn, unused_reason, one_per_record,
                                                              frozenset(fields) if fields is not None else None))


def extra_fields(row: Any, known: frozenset[str] | None) -> dict[str, Any]:
    """The fields of a record its kind does not use (kept, not dropped)."""
    if known is None or not isinstance(row, dict):
        return {}
    return {key: value for key, value in row.items() if key not in known}


def per_record(records: Iterable[RawRecord], ctx: KindContext,
               parse: Callable[[Any, KindContext, int], Signal | Fate]) -> Iterator[Signal | Fate]:
    """Run ``parse`` on each record; a RowError becomes a rejected Fate naming the reason."""
    for record in records:
        try:
            yield parse(record.row, ctx, record.line)
        except RowError as exc:
            yield Fate(record.line, "rejected", "invalid", str(exc), record.raw)


def choice(value: Any, name: str) -> str:
    """'a', 'b' or 'tie' (any case)."""
    if isinstance(value, str) and value.strip().lower() in ("a", "b", "tie"):
        return value.strip().lower()
    raise RowError(f"'{name}' must be 'a', 'b' or 'tie', got {value!r}")


def _object(row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
    return row


def _source(row: dict[str, Any], ctx: KindContext) -> str:
    return optional_text(row, "source") or ctx.source


def two_responses(row: dict[str, Any], required: tuple[str, ...]) -> tuple[list, list, list]:
    """prompt, response_a, response_b of a row, validated (``required`` lists every field the row needs)."""
    require(row, required)
    return prompt_messages(row["prompt"]), reply_messages(row["response_a"], "response_a"), reply_messages(row["response_b"], "response_b")


# --- pairs: a file of chosen/rejected rows (the default) ----------------------------------------


@signal_kind("pairs", one_per_record=True,
             fields=("prompt", "chosen", "rejected", "slices", "source", "weight", "annotator", "rationale"))
def read_pairs(records: Iterable[RawRecord], ctx: KindContext) -> Iterator[Signal | Fate]:
    """Rows that already say which response is better: each is one signal for its chosen response."""

    def parse(row: Any, ctx: KindContext, line: int) -> Signal:
        given = pair_fields(row, ctx.source, ctx.rules.slices)
        return Signal(prompt=given.prompt, a=given.chosen, b=given.rejected, label="a", kind="pairs", rule="given",
                      source=given.source, confidence=given.weight, slices=given.slices, lines=[line],
                      annotator=optional_text(row, "annotator"), rationale=optional_text(row, "rationale"))

    yield from per_record(records, ctx, parse)


# --- pairwise human choices ------------------------------------------------------------------


@signal_kind("pairwise", one_per_record=True,
             fields=("prompt", "response_a", "response_b", "choice", "annotator", "rationale", "axes", "slices", "source",
                     "weight", "chosen", "rejected"))
def read_pairwise(records: Iterable[RawRecord], ctx: KindContext) -> Iterator[Signal | Fate]:
    """A person's A/B choice (or tie), with annotator, rationale and optional per-axis choices.

    Row: ``{"prompt", "response_a", "response_b", "choice": "a"|"b"|"tie", "annotator", "rationale",
    "axes": {"tone": "b", ...}, "slices"}``; a row with ``chosen``/``rejected`` instead is a choice of ``chosen``.
    """

    def parse(row: Any, ctx: KindContext, line: int) -> Signal:
        row = _object(row)
        if "response_a" not in row and "response_b" not in row and ("chosen" in row or "rejected" in row):
            given = pair_fields(row, ctx.source, ctx.rules.slices)
            prompt, a, b = given.prompt, given.chosen, given.rejected
            label = "a"
        else:
            prompt, a, b = two_responses(row, ("prompt", "response_a", "response_b", "choice"))
            label = choice(row["choice"], "choice")
        axes = row.get("axes") or {}
        if not isinstance(axes, dict):
            raise RowError(f"'axes' must be an object of per-axis choices, got {type(axes).__name__}")
        unknown = sorted(set(axes) - set(ctx.rules.pairwise.axes))
        if unknown:
            raise RowError(f"unknown axis {', '.join(map(repr, unknown))} in 'axes' (known: {', '.join(ctx.rules.pairwise.axes)}; pairwise.axes in the rules)")
        return Signal(prompt=prompt, a=a, b=b, label=label, kind="pairwise", rule="human_choice",
                      source=_source(row, ctx), annotator=optional_text(row, "annotator"),
                      rationale=optional_text(row, "rationale"),
                      axes={axis: choice(value, f"axes.{axis}") for axis, value in axes.items()},
                      confidence=unit_weight(row.get("weight", 1.0)), slices=check_slices(row.get("slices"), ctx.rules.slices),
                      lines=[line])

    yield from per_record(records, ctx, parse)


# --- model-judge labels --------------------------------------------------------------------


def _audited(key: str, judge: str, seed: int, fraction: float) -> bool:
    """A deterministic, streaming sample: the same seed picks the same judged pairs."""
    digest = hashlib.sha256(f"{seed}:{judge}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@signal_kind("judge", one_per_record=True,
             fields=("prompt", "response_a", "response_b", "judge", "verdict_ab", "verdict_ba", "rationale", "slices", "source"))
def read_judge(records: Iterable[RawRecord], ctx: KindContext) -> Iterator[Signal | Fate]:
    """A judge model's verdicts on one pair, asked in both orders.

    Row: ``{"prompt", "response_a", "response_b", "judge", "verdict_ab", "verdict_ba", "rationale"}``.
    Both verdicts name the response the judge preferred (``a``, ``b`` or ``tie``): ``verdict_ab`` from the
    call that showed A first, ``verdict_ba`` from the call that showed B first. Different verdicts mean
    the judge followed the position, not the content: the pair is position-inconsistent.
    """
    rules = ctx.rules.judge

    def parse(row: Any, ctx: KindContext, line: int) -> Signal:
        row = _object(row)
        prompt, a, b = two_responses(row, ("prompt", "response_a", "response_b", "judge", "verdict_ab", "verdict_ba"))
        judge = optional_text(row, "judge")
        if judge is None:
            raise RowError("'judge' is empty: name the judge model")
        first, second = choice(row["verdict_ab"], "verdict_ab"), choice(row["verdict_ba"], "verdict_ba")
        consistent = first == second
        excluded = None
        if not consistent:
            ctx.stats["judge.position_inconsistent"] += 1
            if rules.exclude_position_inconsistent:
                excluded = {"category": "position-inconsistent",
                            "reason": f"position-inconsistent: the judge chose {first!r} with A shown first and {second!r} with B shown first"}
        signal = Signal(prompt=prompt, a=a, b=b, label=first if consistent else "tie", kind="judge", rule="both_orders",
                        source=_source(row, ctx), annotator=judge, rationale=optional_text(row, "rationale"),
                        confidence=rules.confidence, slices=check_slices(row.get("slices"), ctx.rules.slices),
                        lines=[line], meta={"verdict_ab": first, "verdict_ba": second, "position_consistent": consistent},
                        excluded=excluded)
        if _audited(signal.key, judge, rules.audit_seed, rules.audit_fraction):
            ctx.audit.append({"line": line, "key": signal.key, "judge": judge, "prompt": prompt,
                              "response_a": a, "response_b": b, "verdict_ab": first, "verdict_ba": second,
                              "position_consistent": consistent, "rationale": signal.rationale})
        return signal

    yield from per_record(records, ctx, parse)

