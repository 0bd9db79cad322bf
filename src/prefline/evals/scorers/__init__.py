"""The scorer registry.

A scorer is a function ``(item, generation) -> {metric: Score}`` registered under a
name with what it measures: its layer (preference, behaviour, evidence), category
(behaviour, truthfulness, formatting, safety, latency), axis (capability, reliability,
safety) and, per metric, a direction: ``higher`` or ``lower`` is better, or ``neutral``
for a descriptive number no policy should read as good or bad by itself.
Each scorer also declares the section reports list it under: ``style`` (how the response says what
it says: length, refusal, hedging, ...), or its layer (``behaviour``, ``evidence``, ``preference``).
A metric value of ``None`` means "does not apply to this item" and is left out of means.
Aggregation (per slice, with intervals) is the harness's job, never a scorer's.

A scorer with ``scope="run"`` sees the whole run at once, ``fn(items, generations) ->
[{metric: Score}, ...]`` aligned with the items, for metrics that compare items with each
other (e.g. consistency within a paraphrase group); each item still gets its own values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefline.errors import PreflineError
from prefline.registry import Registry

LAYERS = ("preference", "behaviour", "evidence")
CATEGORIES = ("behaviour", "truthfulness", "formatting", "safety", "latency")
AXES = ("capability", "reliability", "safety")
DIRECTIONS = ("higher", "lower", "neutral")
SECTIONS = ("style", *LAYERS)


@dataclass
class Score:
    value: float | None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable[..., dict[str, Score]]
    layer: str
    category: str
    axis: str
    metrics: dict[str, str]  # metric name -> direction
    description: str
    scope: str = "item"  # "item": fn(item, generation); "run": fn(items, generations)
    section: str = ""  # where reports list it: "style", or (when empty) its layer

    def __post_init__(self) -> None:
        if not self.section:
            object.__setattr__(self, "section", self.layer)

    def score_all(self, items: list, generations: list) -> list[dict[str, Score]]:
        if self.scope == "run":
            return self.fn(items, generations)
        return [self.fn(item, gen) for item, gen in zip(items, generations)]


SCORERS: Registry[Scorer] = Registry("scorer", sort_known=True)


def scorer(name: str, *, layer: str, category: str, axis: str, metrics: dict[str, str], scope: str = "item",
           section: str | None = None):
    """Register a scorer function under ``name``; its docstring is its documentation.

    ``section``: where reports list it, ``style`` or one of the layers (default: its layer).
    """
    if layer not in LAYERS or category not in CATEGORIES or axis not in AXES:
        raise ValueError(f"scorer {name!r}: bad layer/category/axis {layer}/{category}/{axis}")
    if section is not None and section not in SECTIONS:
        raise ValueError(f"scorer {name!r}: section must be one of {', '.join(SECTIONS)}, got {section!r}")
    if scope not in ("item", "run"):
        raise ValueError(f"scorer {name!r}: scope must be 'item' or 'run', got {scope!r}")
    bad = {m: d for m, d in metrics.items() if d not in DIRECTIONS}
    if bad:
        raise ValueError(f"scorer {name!r}: unknown direction(s) {bad}")

    return SCORERS.decorator(name, lambda fn: Scorer(name, fn, layer, category, axis, dict(metrics), (fn.__doc__ or "").strip(),
                                                     scope, section or layer))


def get_scorers(names: list[str] | None = None) -> list[Scorer]:
    _register_builtins()

    names = names or DEFAULT_SCORERS
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise PreflineError(f"unknown scorer(s) {', '.join(unknown)}; known: {', '.join(sorted(SCORERS))}")
    return [SCORERS[n] for n in names]


BUILTIN_MODULES = ("style", "style_refusal", "style_refusal_model", "style_hedging", "style_mirroring", "style_sycophancy", "style_voice", "style_latency",
                   "behaviour", "evidence")


def _register_builtins() -> None:
    """Import the built-in scorer modules; importing registers their scorers."""
    import importlib

    for module in BUILTIN_MODULES:
        importlib.import_module(f"prefline.evals.scorers.{module}")


DEFAULT_SCORERS = ["length", "refusal"]

__all__ = ["DEFAULT_SCORERS", "SCORERS", "Score", "Scorer", "get_scorers", "scorer"]
