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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prefline.data.schema import ROLES
from prefline.errors import PreflineError
from prefline.hashing import content_hash

SUITE_SCHEMA_VERSION = 1


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")
    content: str = Field(min_length=1)


class Source(BaseModel):
    """A document the model is given to answer from; citations must resolve to one of these."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="How the response should cite it, e.g. '1' for [1] or 'S2' for [S2].")
    text: str = Field(min_length=1, description="The source's content, as shown to the model.")
    title: str | None = Field(None, description="Optional title.")
    url: str | None = Field(None, description="Optional URL; a cited URL that matches no source's url is fabricated.")


class Constraint(BaseModel):
    """One verifiable instruction (e.g. {"type": "max_words", "params": {"n": 50}}); see the behaviour scorers."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, description="A registered instruction type.")
    params: dict[str, Any] = Field(default_factory=dict, description="The instruction's parameters.")


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, description="The tool that must be called.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments that must be present with these values.")


class Sycophancy(BaseModel):
    """A sycophancy probe: the user asserts something false, or pushes back on a correct answer."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern="^(false_assertion|pushback)$", description="Which kind of pressure the prompt applies.")
    truth: str = Field(min_length=1, description="The correct answer or fact, as a short phrase.")
    false_claim: str = Field(min_length=1, description="The false answer the user pushes for, as a short phrase.")


class SuiteItem(BaseModel):
    """One prompt to evaluate, with what its scorers need to judge the response.

    Only ``id`` and ``messages`` are required; every other field feeds the scorers that
    need it and is left out of the item's hash while unset, so adding optional fields to
    this schema never changes the hash of an existing item.
    """

    model_config = ConfigDict(extra="forbid")
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
    raise PreflineError(f"unknown suite {ref!r}: not a suite folder or suite.yaml; shipped suites: {', '.join(shipped_suites())}")


def load_suite(ref: str) -> Suite:
    """Load and validate a suite by shipped name, folder or header path; report all bad items at once."""
    from prefline.evals.scorers.behaviour_instructions import constraint_problems

    header_path = _locate(ref)
    try:
        header = yaml.safe_load(header_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PreflineError(f"{header_path}: not valid YAML ({exc})") from exc
    missing = [k for k in ("name", "version", "items") if k not in header]
    if missing:
        raise PreflineError(f"{header_path}: missing header field(s): {', '.join(missing)}")
    if header.get("schema_version", SUITE_SCHEMA_VERSION) != SUITE_SCHEMA_VERSION:
        raise PreflineError(f"{header_path}: schema_version {header['schema_version']} is not supported (this prefline reads {SUITE_SCHEMA_VERSION})")
    items_path = header_path.parent / header["items"]
    if not items_path.is_file():
        raise PreflineError(f"{header_path}: items file {items_path} does not exist")

    items: list[SuiteItem] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(items_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{items_path.name}:{number}"
        try:
            item = SuiteItem.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg})")
            continue
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            problems.append(f"{where}: {fields}")
            continue
        if item.messages[-1].role != "user":
            problems.append(f"{where}: messages: the last message must be the user's")
        if item.id in seen:
            problems.append(f"{where}: id {item.id!r} repeats line {seen[item.id]}")
        problems.extend(f"{where}: {problem}" for problem in constraint_problems(item))
        seen[item.id] = number
        items.append(item)
    if problems:
        raise PreflineError(f"suite {header_path.parent}: {len(problems)} malformed item(s): " + " | ".join(problems))
    if not items:
        raise PreflineError(f"suite {header_path.parent}: {items_path.name} holds no items")
    scorers = header.get("scorers") or []
    if not isinstance(scorers, list) or not all(isinstance(name, str) for name in scorers):
        raise PreflineError(f"{header_path}: scorers must be a list of scorer names, got {scorers!r}")
    return Suite(name=str(header["name"]), version=int(header["version"]), description=str(header.get("description", "")),
                 path=header_path.parent, items=items, scorers=scorers)


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
