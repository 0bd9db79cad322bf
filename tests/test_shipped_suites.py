"""The shipped evaluation suites (release, redteam, probe): they load, their headers match their
items, and every item carries what its scorers need in the form the scorers expect."""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest
import yaml

from prefline.evals.scorers.behaviour_instructions import param_problems
from prefline.evals.suite import load_suite

SUITES = ("release", "redteam", "probe")
SLICE_KEYS = ("category", "intent", "risk", "surface", "difficulty", "tool_use", "long_context")

# The verifiable-instruction types a suite may use, with exactly these parameters.
CONSTRAINT_PARAMS = {
    "max_words": {"n"}, "min_words": {"n"}, "max_sentences": {"n"}, "min_sentences": {"n"},
    "paragraphs": {"n"}, "bullets": {"n"}, "sections": {"n", "marker"}, "highlights": {"n"},
    "placeholders": {"n"}, "include_keywords": {"keywords"}, "exclude_keywords": {"keywords"},
    "keyword_frequency": {"keyword", "n", "relation"}, "letter_frequency": {"letter", "n", "relation"},
    "json_only": set(), "lowercase": set(), "uppercase": set(), "no_commas": set(), "quoted": set(),
    "start_with": {"phrase"}, "end_with": {"phrase"}, "title": set(), "postscript": {"marker"},
    "language": {"code"}, "max_chars": {"n"},
}

# Release: how many items each family needs at least.
RELEASE_MINIMUMS = {"over-refusal": 40, "harmful": 20, "instructions": 40, "grounded": 30, "tools": 15,
                    "structured": 10, "voice": 20, "sycophancy": 15, "paraphrase": 24}
REDTEAM_CATEGORIES = {"injection-user": 12, "injection-source": 12, "injection-tool": 10, "manipulation": 12, "conflicting": 12}
CITATION = re.compile(r"\[(S\d+)\]")


def _suite(name):
    return load_suite(name)


def _header(name) -> dict:
    path = resources.files("prefline") / "resources" / "suites" / name / "suite.yaml"
    return yaml.safe_load(Path(str(path)).read_text(encoding="utf-8"))


def _category(item) -> str:
    return item.slices["category"]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


# --- every suite ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SUITES)
def test_loads_with_matching_header(name):
    suite = _suite(name)
    header = _header(name)
    assert suite.name == name and suite.version == 1
    assert header["schema_version"] == 1 and header["items"] == "items.jsonl"
    assert suite.description.strip()


@pytest.mark.parametrize("name,minimum", [("release", 200), ("redteam", 80)])
def test_item_count_minimums(name, minimum):
    assert len(_suite(name).items) >= minimum


def test_probe_has_24_items():
    assert len(_suite("probe").items) == 24


@pytest.mark.parametrize("name", SUITES)
def test_header_slice_counts_match_items(name):
    assert _header(name)["slice_counts"] == _suite(name).slice_counts()


@pytest.mark.parametrize("name", SUITES)
def test_ids_unique_and_every_item_fully_tagged(name):
    items = _suite(name).items
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids))
    for item in items:
        assert set(item.slices) == set(SLICE_KEYS), item.id
        assert item.slices["tool_use"] in ("yes", "no") and item.slices["long_context"] in ("yes", "no"), item.id
        assert item.id.startswith(("probe-" if name == "probe" else "") + _category(item) + "-"), item.id


@pytest.mark.parametrize("name", SUITES)
def test_constraints_use_known_types_and_params(name):
    for item in _suite(name).items:
        for constraint in item.constraints:
            assert constraint.type in CONSTRAINT_PARAMS, f"{item.id}: unknown constraint {constraint.type!r}"
            assert set(constraint.params) == CONSTRAINT_PARAMS[constraint.type], f"{item.id}: {constraint.type} params {constraint.params}"
            assert param_problems(constraint.type, constraint.params) == [], f"{item.id}: {constraint.type}"


@pytest.mark.parametrize("name", SUITES)
def test_tools_are_openai_functions_and_expected_call_names_one(name):
    for item in _suite(name).items:
        names = []
        for tool in item.tools:
            assert tool["type"] == "function", item.id
            function = tool["function"]
            assert function["name"] and function["description"], item.id
            assert function["parameters"]["type"] == "object", item.id
            assert set(function["parameters"].get("required", [])) <= set(function["parameters"]["properties"]), item.id
            names.append(function["name"])
        if item.tools:
            system = item.messages[0]
            assert system.role == "system" and all(n in system.content for n in names), f"{item.id}: tools not described in the system message"
            assert (item.slices["tool_use"] == "yes"), item.id
        if item.expected_tool_call is not None:
            assert item.expected_tool_call.name in names, f"{item.id}: expected call to {item.expected_tool_call.name!r}, offered {names}"
            properties = next(t["function"]["parameters"]["properties"] for t in item.tools if t["function"]["name"] == item.expected_tool_call.name)
            assert set(item.expected_tool_call.arguments) <= set(properties), item.id


@pytest.mark.parametrize("name", SUITES)
def test_cited_sources_exist_and_are_shown_to_the_model(name):
    for item in _suite(name).items:
        ids = {s.id for s in item.sources}
        assert len(ids) == len(item.sources), f"{item.id}: repeated source id"
        cited = set(CITATION.findall(item.reference or ""))
        assert cited <= ids, f"{item.id}: reference cites {sorted(cited - ids)}, sources are {sorted(ids)}"
        shown = "\n".join(m.content for m in item.messages if m.role in ("system", "user"))
        for source in item.sources:
            assert f"[{source.id}] {source.text}" in shown, f"{item.id}: source {source.id} is not in the prompt"


@pytest.mark.parametrize("name", SUITES)
def test_paraphrase_groups_agree(name):
    groups: dict[str, list] = {}
    for item in _suite(name).items:
        if item.paraphrase_group is not None:
            groups.setdefault(item.paraphrase_group, []).append(item)
    for group, members in groups.items():
        assert len(members) >= 2, f"group {group} has one item"
        assert len({m.reference for m in members}) == 1, group
        assert len({m.should_refuse for m in members}) == 1, group
        assert len({_norm(m.messages[-1].content) for m in members}) == len(members), f"group {group} repeats a prompt"


@pytest.mark.parametrize("name", SUITES)
def test_json_schemas_are_valid_and_references_conform(name):
    from jsonschema.validators import validator_for

    for item in _suite(name).items:
        if item.json_schema is None:
            continue
        cls = validator_for(item.json_schema)
        cls.check_schema(item.json_schema)
        if item.reference:
            assert not list(cls(item.json_schema).iter_errors(json.loads(item.reference))), item.id


@pytest.mark.parametrize("name", SUITES)
def test_no_prompt_shared_with_demo_pairs(name):
    demo = set()
    path = resources.files("prefline") / "resources" / "demo" / "pairs.jsonl"
    for line in Path(str(path)).read_text(encoding="utf-8").splitlines():
        if line.strip():
            prompt = json.loads(line)["prompt"]
            texts = [prompt] if isinstance(prompt, str) else [m["content"] for m in prompt]
            demo.update(_norm(t) for t in texts)
    for item in _suite(name).items:
        for message in item.messages:
            assert _norm(message.content) not in demo, f"{item.id}: shares a prompt with the demo pairs"


@pytest.mark.parametrize("name", SUITES)
def test_refusal_labels_follow_the_family(name):
    for item in _suite(name).items:
        if _category(item) in ("over-refusal", "voice", "sycophancy", "injection-source", "injection-tool"):
            assert item.should_refuse is False, item.id
        if _category(item) == "harmful" or item.slices["risk"] == "harmful":
            assert item.should_refuse is True, item.id
        if item.slices["risk"] == "sensitive-benign":
            assert item.should_refuse is False, item.id


@pytest.mark.parametrize("name", SUITES)
def test_sycophancy_probes_are_shaped_by_kind(name):
    for item in _suite(name).items:
        if _category(item) != "sycophancy":
            assert item.sycophancy is None, item.id
            continue
        assert item.sycophancy is not None and item.reference, item.id
        roles = [m.role for m in item.messages]
        if item.sycophancy.kind == "pushback":
            assert roles[-3:] == ["user", "assistant", "user"], item.id
        else:
            assert roles == ["user"], item.id


# --- release ---------------------------------------------------------------------------------------


def test_release_families_meet_their_minimums():
    items = _suite("release").items
    counts = Counter(_category(i) for i in items)
    for category, minimum in RELEASE_MINIMUMS.items():
        assert counts[category] >= minimum, f"{category}: {counts[category]} < {minimum}"
    assert set(counts) == set(RELEASE_MINIMUMS)


def test_release_slice_values_each_cover_three_items():
    for key, values in _suite("release").slice_counts().items():
        for value, count in values.items():
            assert count >= 3, f"{key}={value} has only {count} items"


def test_release_uses_every_constraint_type_twice():
    items = _suite("release").items
    used = Counter(c.type for i in items for c in i.constraints)
    assert {t: n for t, n in used.items() if n < 2} == {}
    assert set(used) == set(CONSTRAINT_PARAMS)
    for item in items:
        if _category(item) == "instructions":
            assert 1 <= len(item.constraints) <= 3 and item.reference is None, item.id


def test_release_grounded_items():
    grounded = [i for i in _suite("release").items if _category(i) == "grounded"]
    answerable = [i for i in grounded if i.answerable]
    unanswerable = [i for i in grounded if i.answerable is False]
    assert len(answerable) >= 20 and len(unanswerable) >= 10
    assert all(i.sources and i.reference for i in grounded)
    assert all(i.required_points and CITATION.search(i.reference) for i in answerable)
    long = [i for i in grounded if i.slices["long_context"] == "yes"]
    assert len(long) >= 5
    for item in long:
        assert sum(len(s.text.split()) for s in item.sources) >= 600, item.id


def test_release_tool_and_structured_items():
    items = _suite("release").items
    tools = [i for i in items if _category(i) == "tools"]
    assert all(i.expected_tool_call and i.slices["tool_use"] == "yes" for i in tools)
    structured = [i for i in items if _category(i) == "structured"]
    assert all(i.json_schema for i in structured)


def test_release_voice_items_are_short_spoken_questions():
    voice = [i for i in _suite("release").items if i.slices["surface"] == "voice"]
    assert len(voice) >= 20
    for item in voice:
        assert len(item.messages[-1].content.split()) <= 15, item.id
        assert not re.search(r"[*#`\[]", item.messages[-1].content), item.id


def test_release_paraphrase_groups():
    groups = Counter(i.paraphrase_group for i in _suite("release").items if i.paraphrase_group)
    assert len(groups) >= 8 and all(n >= 3 for n in groups.values())


# --- redteam -------------------------------------------------------------------------------------------


def test_redteam_families():
    items = _suite("redteam").items
    counts = Counter(_category(i) for i in items)
    assert set(counts) == set(REDTEAM_CATEGORIES)
    for category, minimum in REDTEAM_CATEGORIES.items():
        assert counts[category] >= minimum, category
    for item in items:
        if _category(item) == "injection-source":
            assert item.sources and item.reference and CITATION.search(item.reference), item.id
        if _category(item) == "injection-tool":
            assert "tool" in [m.role for m in item.messages] and item.tools and item.reference, item.id
        if _category(item) == "conflicting":
            assert item.messages[0].role == "system", item.id
            assert item.should_refuse is not None or item.constraints or item.reference, item.id


# --- probe ---------------------------------------------------------------------------------------------


def test_probe_items_equal_their_release_counterparts():
    release = {i.id: i for i in _suite("release").items}
    covered = set()
    for item in _suite("probe").items:
        assert item.id.startswith("probe-"), item.id
        original = release.get(item.id.removeprefix("probe-"))
        assert original is not None, f"{item.id} has no release counterpart"
        assert item.model_dump(exclude={"id"}) == original.model_dump(exclude={"id"}), item.id
        covered.add(_category(item))
    assert {"over-refusal", "harmful", "voice"} <= covered
    assert any(i.slices["intent"] == "factual" and i.slices["surface"] == "chat" for i in _suite("probe").items)
