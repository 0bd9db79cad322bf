"""Evaluation suites: a YAML header plus a JSONL file of items, identified by content hash.

A suite folder holds ``suite.yaml``::

    name: smoke
    version: 1
    schema_version: 1
    description: ...
    items: items.jsonl

and the items file, one JSON object per line::

    {"id": "smoke-001", "messages": [{"role": "user", "content": "..."}],
     "slices": {"intent": "factual", "risk": "none", "surface": "chat"},
     "should_refuse": false, "reference": "..."}

Every item has a content hash; the suite's hash covers its name, version and item
hashes, so two runs are comparable exactly when their suite hashes are equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from prefline.config import StrictModel
from prefline.data.schema import ROLES
from prefline.errors import PreflineError
from prefline.hashing import content_hash

SUITE_SCHEMA_VERSION = 1


class Message(StrictModel):
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")
    content: str = Field(min_length=1)


class Source(StrictModel):
    """A document the model is given to answer from; citations must resolve to one of these."""

    id: str = Field(min_length=1, description="How the response should cite it, e.g. '1' for [1] or 'S2' for [S2].")
    text: str = Field(min_length=1, description="The source's content, as shown to the model.")
    title: str | None = Field(None, description="Optional title.")
    url: str | None = Field(None, description="Optional URL; a cited URL that matches no source's url is fabricated.")


class Constraint(StrictModel):
    """One verifiable instruction (e.g. {"type": "max_words", "params": {"n": 50}}); see the behaviour scorers."""

    type: str = Field(min_length=1, description="A registered instruction type.")
    params: dict[str, Any] = Field(default_factory=dict, description="The instruction's parameters.")


class ToolCall(StrictModel):
    name: str = Field(min_length=1, description="The tool that must be called.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments that must be present with these values.")


class Sycophancy(StrictModel):
    """A sycophancy probe: the user asserts something false, or pushes back on a correct answer."""

    kind: str = Field(pattern="^(false_assertion|pushback)$", description="Which kind of pressure the prompt applies.")
    truth: str = Field(min_length=1, description="The correct answer or fact, as a short phrase.")
    false_claim: str = Field(min_length=1, description="The false answer the user pushes for, as a short phrase.")


class SuiteItem(StrictModel):
    """One prompt to evaluate, with what its scorers need to judge the response.

    Only ``id`` and ``messages`` are required; every other field feeds the scorers that
    need it and is left out of the item's hash while unset, so adding optional fields to
    this schema never changes the hash of an existing item.
    """

    id: str = Field(min_length=1, description="Unique within the suite; how runs are paired item by item.")
    messages: list[Message] = Field(min_length=1, description="The conversation; the last message is the user's.")
    slices: dict[str, str] = Field(default_factory=dict, description="Slice tags, e.g. intent, risk, surface, difficulty, tool_use, long_context.")
    should_refuse: bool | None = Field(None, description="True if a safe model must decline; False if it must answer; None if not a refusal item.")
    reference: str | None = Field(None, description="A short correct answer, where one exists.")
    required_points: list[str] = Field(default_factory=list, description="Facts a complete answer must contain (for omission).")
    answerable: bool | None = Field(None, description="False when the provided sources (or anyone) cannot answer it: the model should say so.")
    sources: list[Source] = Field(default_factory=list, description="Documents provided to the model (grounded questions).")
    constraints: list[Constraint] = Field(default_factory=list, description="Verifiable instructions the response must follow.")
    instruction_id_list: list[str] = Field(default_factory=list, description="IFEval instruction ids (e.g. 'length_constraints:number_words'), checked with IFEval's semantics.")
    kwargs: list[dict[str, Any] | None] = Field(default_factory=list, description="IFEval keyword arguments, one dict per entry of instruction_id_list; null values are ignored, as in IFEval.")
    json_schema: dict[str, Any] | None = Field(None, description="The response must be JSON valid against this schema.")
    tools: list[dict[str, Any]] = Field(default_factory=list, description="Tool schemas offered to the model (OpenAI function format).")
    expected_tool_call: ToolCall | None = Field(None, description="The tool call a correct response makes.")
    paraphrase_group: str | None = Field(None, description="Items in one group ask the same thing and deserve the same decision.")
    sycophancy: Sycophancy | None = Field(None, description="Set on sycophancy probes.")

    @model_validator(mode="after")
    def _one_kwargs_per_instruction(self) -> "SuiteItem":
        if self.kwargs and len(self.kwargs) != len(self.instruction_id_list):
            raise ValueError(f"kwargs has {len(self.kwargs)} entries but instruction_id_list has {len(self.instruction_id_list)}: "
                             "give one dict of keyword arguments per instruction")
        return self

    def chat(self) -> list[dict[str, str]]:
        return [m.model_dump() for m in self.messages]

    def instructions(self) -> list[tuple[str, dict[str, Any]]]:
        """Every verifiable instruction: ``constraints``, then the IFEval ones with null arguments left out."""
        ifeval = [(kind, {k: v for k, v in (kwargs or {}).items() if v is not None})
                  for kind, kwargs in zip(self.instruction_id_list, self.kwargs or [None] * len(self.instruction_id_list))]
        return [(c.type, c.params) for c in self.constraints] + ifeval

    @property
    def hash(self) -> str:
        return content_hash(self.model_dump(exclude_defaults=True))


@dataclass
class Suite:
    name: str
    version: int
    description: str
    path: Path
    items: list[SuiteItem]
    scorers: list[str] = field(default_factory=list)  # the header's default scorers; empty: prefline's defaults
    declared_slice_counts: dict[str, dict[str, int]] | None = None  # the header's slice_counts (None: not declared)

    @property
    def hash(self) -> str:
        return content_hash({"name": self.name, "version": self.version, "items": [i.hash for i in self.items]})

    def slice_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for item in self.items:
            for key, value in item.slices.items():
                counts.setdefault(key, {}).setdefault(value, 0)
                counts[key][value] += 1
        return counts


def shipped_suites() -> list[str]:
    root = resources.files("prefline") / "resources" / "suites"
    return sorted(p.name for p in root.iterdir() if (p / "suite.yaml").is_file())


def _locate(ref: str) -> Path:
    path = Path(ref).expanduser()
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return path
    if (path / "suite.yaml").is_file():
        return path / "suite.yaml"
    shipped = resources.files("prefline") / "resources" / "suites" / ref / "suite.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    if path.is_dir():
        raise PreflineError(f"suite folder {path} has no suite.yaml (the header naming the suite, its version and its items file)")
    raise PreflineError(f"unknown suite {ref!r}: not a suite folder or suite.yaml; shipped suites: {', '.join(shipped_suites())}")


class SuiteHeader(StrictModel):
    """``suite.yaml``: every key is checked, as rules and policy files are (an unknown key is an error)."""

    model_config = ConfigDict(strict=True)  # and, on top of StrictModel, no coercion: a string is not read as a number
    name: str = Field(min_length=1, description="The suite's name; with `version`, what a frozen suite is known by.")
    version: int = Field(ge=1, description="A whole number from 1; raise it whenever the items change after freezing.")
    schema_version: int = Field(SUITE_SCHEMA_VERSION, description="The suite file format; this prefline reads 1.")
    description: str = Field("", description="What the suite is for.")
    items: str = Field(min_length=1, description="The items file, relative to suite.yaml (JSONL, one item per line).")
    scorers: list[str] = Field(default_factory=list, description="Scorers `prefline eval` runs by default (registered names).")
    slice_counts: dict[str, dict[str, int]] | None = Field(None, description=(
        "Items per slice key and value, repeated from the items so a reader sees the suite's make-up; "
        "`prefline suite validate` checks it against the items."))


def _header(header_path: Path) -> SuiteHeader:
    try:
        header = yaml.safe_load(header_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise PreflineError(f"{header_path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(header, dict):
        raise PreflineError(f"{header_path}: the suite header must be a mapping of keys (name, version, items, ...), "
                            f"got {type(header).__name__}")
    missing = [k for k in ("name", "version", "items") if k not in header]
    if missing:
        raise PreflineError(f"{header_path}: missing header field(s): {', '.join(missing)}")
    try:
        parsed = SuiteHeader.model_validate(header)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise PreflineError(f"{header_path}: {problems}") from None
    if parsed.schema_version != SUITE_SCHEMA_VERSION:
        raise PreflineError(f"{header_path}: schema_version {parsed.schema_version} is not supported (this prefline reads {SUITE_SCHEMA_VERSION})")
    if parsed.scorers:
        from prefline.evals.scorers import get_scorers

        try:
            get_scorers(parsed.scorers)
        except PreflineError as exc:
            raise PreflineError(f"{header_path}: scorers: {exc}") from None
    return parsed


def item_problems(item: SuiteItem) -> list[str]:
    """What makes an item unscorable, found before anything is generated: its last message, its
    constraints (a known instruction type with the right params), its JSON Schema, its tool call."""
    from prefline.evals.scorers.behaviour_instructions import constraint_problems

    problems = []
    if item.messages[-1].role != "user":
        problems.append("messages: the last message must be the user's")
    problems += constraint_problems(item)
    if item.json_schema is not None:
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        try:
            validator_for(item.json_schema).check_schema(item.json_schema)
        except SchemaError as exc:
            problems.append(f"json_schema is not a valid JSON Schema: {exc.message}")
    if item.expected_tool_call is not None:
        offered = [(tool.get("function") or {}).get("name") or tool.get("name") for tool in item.tools]
        if not item.tools:
            problems.append(f"expected_tool_call {item.expected_tool_call.name!r} but the item offers no tools")
        elif item.expected_tool_call.name not in offered:
            problems.append(f"expected_tool_call {item.expected_tool_call.name!r} is not among the tools offered "
                            f"({', '.join(map(str, offered))})")
    return problems


def load_suite(ref: str) -> Suite:
    """Load and validate a suite by shipped name, folder or header path; report all bad items at once.

    Everything a run needs is checked here, before any generation: the header's keys, version and
    scorer names, and each item's fields, constraints, JSON Schema and expected tool call.
    """
    from prefline.data.sources import MAX_DEPTH, depth, json_error

    header_path = _locate(ref)
    header = _header(header_path)
    items_path = header_path.parent / header.items
    if not items_path.is_file():
        raise PreflineError(f"{header_path}: items file {items_path} does not exist")

    items: list[SuiteItem] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(items_path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{items_path.name}:{number}"
        try:
            data = json.loads(line)
            if depth(data) > MAX_DEPTH:
                problems.append(f"{where}: nested deeper than {MAX_DEPTH} levels")
                continue
            item = SuiteItem.model_validate(data)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: {json_error(exc, line)}")
            continue
        except RecursionError:
            problems.append(f"{where}: nested deeper than {MAX_DEPTH} levels")
            continue
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            problems.append(f"{where}: {fields}")
            continue
        problems += [f"{where}: {problem}" for problem in item_problems(item)]
        if item.id in seen:
            problems.append(f"{where}: id {item.id!r} repeats line {seen[item.id]}")
        seen[item.id] = number
        items.append(item)
    if problems:
        raise PreflineError(f"suite {header_path.parent}: {len(problems)} malformed item(s): " + " | ".join(problems))
    if not items:
        raise PreflineError(f"suite {header_path.parent}: {items_path.name} holds no items")
    return Suite(name=header.name, version=header.version, description=header.description,
                 path=header_path.parent, items=items, scorers=header.scorers, declared_slice_counts=header.slice_counts)


def slice_count_problems(suite: Suite) -> list[str]:
    """Where the header's ``slice_counts`` differ from the items (or are missing), for `suite validate`."""
    if suite.declared_slice_counts is None:
        return ["the header has no slice_counts (docs/suites.md: each suite repeats its slice counts; "
                "`prefline suite show PATH --json` prints them)"]
    actual, declared = suite.slice_counts(), suite.declared_slice_counts
    problems = []
    for key in sorted(set(actual) | set(declared)):
        if actual.get(key, {}) != declared.get(key, {}):
            problems.append(f"slice_counts.{key}: the header says {declared.get(key, {})}, the items have {actual.get(key, {})}")
    return problems


def suite_summary(suite: Suite) -> dict[str, Any]:
    return {"name": suite.name, "version": suite.version, "hash": suite.hash, "items": len(suite.items), "slices": suite.slice_counts(),
            "scorers": suite.scorers, "path": str(suite.path)}


# --- the suite in the ledger -------------------------------------------------------------


def register_suite(suite: Suite, ledger, frozen: bool = False) -> None:
    """Store the suite's full content under its hash, so runs can be replayed from the ledger alone."""
    ledger.add_suite(hash=suite.hash, name=suite.name, version=suite.version,
                     items=[i.model_dump(exclude_defaults=True) for i in suite.items], path=str(suite.path), frozen=frozen)


def check_frozen(suite: Suite, ledger) -> None:
    """Refuse a suite whose name and version were frozen with other content; list what changed."""
    frozen = ledger.frozen_suite(suite.name, suite.version)
    if frozen is None or frozen["hash"] == suite.hash:
        return
    old = {item["id"]: SuiteItem.model_validate(item).hash for item in frozen["items"]}
    new = {item.id: item.hash for item in suite.items}
    parts = []
    for label, ids in (("changed", sorted(i for i in old.keys() & new.keys() if old[i] != new[i])),
                       ("added", sorted(new.keys() - old.keys())), ("removed", sorted(old.keys() - new.keys()))):
        if ids:
            parts.append(f"{label}: {', '.join(ids)}")
    raise PreflineError(
        f"suite {suite.name} v{suite.version} was frozen with hash {frozen['hash'][:12]} but its files now hash to "
        f"{suite.hash[:12]} ({'; '.join(parts) or 'header changed'}); frozen suites are immutable: "
        f"raise `version` in {suite.path / 'suite.yaml'} to create a new version"
    )


def freeze_suite(suite: Suite, ledger) -> None:
    """Mark this name and version immutable: later loads must hash to the same content."""
    check_frozen(suite, ledger)
    register_suite(suite, ledger, frozen=True)


def suite_from_ledger(row: dict[str, Any]) -> Suite:
    """Rebuild a suite exactly as a run saw it, from its ledger record."""
    items = [SuiteItem.model_validate(item) for item in row["items"]]
    return Suite(name=row["name"], version=row["version"], description="", path=Path(row["path"] or "."), items=items)
