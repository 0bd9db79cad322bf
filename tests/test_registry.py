"""The one registry behind scorers, backends, readers, signal kinds and instruction types."""

from __future__ import annotations

import pytest

from prefline.data.signals import SIGNAL_KINDS
from prefline.data.sources import READERS
from prefline.errors import PreflineError
from prefline.evals.backends import BACKENDS, get_backend
from prefline.evals.scorers import SCORERS, get_scorers, scorer
from prefline.evals.scorers.behaviour_instructions import INSTRUCTIONS
from prefline.registry import Registry


def test_register_lookup_and_errors():
    things = Registry("widget")
    decorate = things.decorator("b", make=lambda fn: ("wrapped", fn))

    def fn() -> None: ...

    assert decorate(fn) is fn  # the decorated object comes back unchanged
    things.register("a", 1)
    assert things.lookup("b") == ("wrapped", fn) and things["a"] == 1 and list(things) == ["b", "a"]
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        things.register("a", 2)
    assert things["a"] == 1  # the first registration stands
    with pytest.raises(PreflineError, match=r"unknown widget 'c'; known: b, a$"):
        things.lookup("c")
    assert Registry("widget", sort_known=True).decorator("z")(1) == 1


def test_every_extension_point_uses_it():
    get_scorers(None)
    for registry, some in ((SCORERS, "length"), (BACKENDS, "hf"), (READERS, "jsonl"), (SIGNAL_KINDS, "pairwise"),
                           (INSTRUCTIONS, "max_words")):
        assert isinstance(registry, Registry) and some in registry
    with pytest.raises(PreflineError, match="unknown backend 'nope'; known: hf, openai, vllm"):
        get_backend("nope")


def test_scorers_declare_their_section():
    get_scorers(None)
    sections = {name: s.section for name, s in SCORERS.items()}
    assert {n for n, s in sections.items() if s == "style"} >= {"length", "verbosity", "refusal", "partial_refusal", "hedging",
                                                                 "mirroring", "sycophancy", "voice", "latency"}
    assert sections["instructions"] == "behaviour" and sections["support"] == "evidence"
    with pytest.raises(ValueError, match="section must be one of style, preference, behaviour, evidence"):
        scorer("bad_section", section="looks", layer="behaviour", category="behaviour", axis="capability", metrics={"x": "higher"})
    assert "bad_section" not in SCORERS


def test_section_defaults_to_the_layer():
    @scorer("section_default_test", layer="evidence", category="truthfulness", axis="reliability", metrics={"x": "higher"})
    def score(item, generation):  # noqa: ANN001, ANN202
        return {}

    try:
        assert SCORERS["section_default_test"].section == "evidence"
    finally:
        SCORERS.pop("section_default_test")
