"""Turn an IFEval input file into a prefline suite.

An IFEval input file is JSON Lines, one prompt a line::

    {"key": 1000, "prompt": "Write ... Do not use any commas ...",
     "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
     "kwargs": [{}, {"relation": "at least", "num_words": 300}]}

Each line becomes a suite item ``ifeval-KEY`` whose one user message is the prompt and which
carries the instructions unchanged, so the ``instructions`` scorer checks them with IFEval's
semantics. Every bad line is reported at once (line, field, problem); nothing is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from prefline.errors import PreflineError

IFEVAL_FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")


def _item(row: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any] | None:
    from prefline.evals.scorers.behaviour_instructions import param_problems

    missing = [f for f in IFEVAL_FIELDS if f not in row]
    if missing:
        problems.append(f"{where}: missing field(s) {', '.join(missing)}")
        return None
    prompt, ids, kwargs = row["prompt"], row["instruction_id_list"], row["kwargs"]
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append(f"{where}: prompt must be a non-empty string")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        problems.append(f"{where}: instruction_id_list must be a list of instruction ids")
        return None
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(k is None or isinstance(k, dict) for k in kwargs):
        problems.append(f"{where}: kwargs must be a list of {len(ids)} objects, one per instruction")
        return None
    for index, (kind, args) in enumerate(zip(ids, kwargs)):
        params = {k: v for k, v in (args or {}).items() if v is not None}
        problems.extend(f"{where}: instruction {index} ({kind}): {p}" for p in param_problems(kind, params))
    return {"id": f"ifeval-{row['key']}", "messages": [{"role": "user", "content": prompt}],
            "slices": {"category": "ifeval"}, "instruction_id_list": ids, "kwargs": kwargs}


def import_ifeval(path: str | Path, out: str | Path, name: str | None = None, version: int = 1) -> dict[str, Any]:
    """Write the suite folder ``out`` (``suite.yaml`` + ``items.jsonl``) from the IFEval file ``path``.

    Returns the folder, the item count, per-type instruction counts and a note naming any fields
    of the input that a suite does not keep (such as ``response``).
    """
    from prefline.evals.suite import load_suite

    source, folder = Path(path), Path(out)
    if not source.is_file():
        raise PreflineError(f"IFEval file {source} does not exist")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise PreflineError(f"{folder} already exists and is not an empty folder: choose another --out")
    items, problems, seen, extra = [], [], {}, {}
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source.name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        for field in row.keys() - set(IFEVAL_FIELDS):
            extra[field] = extra.get(field, 0) + 1
        item = _item(row, where, problems)
        if item is None:
            continue
        if item["id"] in seen:
            problems.append(f"{where}: key {row['key']!r} repeats line {seen[item['id']]}")
        seen[item["id"]] = number
        items.append(item)
    if problems:
        raise PreflineError(f"{source}: {len(problems)} problem(s): " + " | ".join(problems))
    if not items:
        raise PreflineError(f"{source} holds no prompts")
    counts: dict[str, int] = {}
    for item in items:
        for kind in item["instruction_id_list"]:
            counts[kind] = counts.get(kind, 0) + 1
    if not folder.parent.is_dir():  # as every --out: prefline does not create a folder tree from a mistyped path
        raise PreflineError(f"{folder}: folder {folder.parent} does not exist (create it first)")
    folder.mkdir(exist_ok=True)
    header = {"name": name or source.stem, "version": version, "schema_version": 1,
              "description": f"IFEval prompts imported from {source.name}, checked with IFEval's semantics.",
              "items": "items.jsonl", "scorers": ["instructions"]}
    (folder / "suite.yaml").write_text(yaml.safe_dump(header, sort_keys=False), encoding="utf-8")
    (folder / "items.jsonl").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    suite = load_suite(str(folder))  # what was written must load: the same checks as any suite
    note = None
    if extra:
        note = "not kept in the suite (a suite holds prompts, not answers): " + ", ".join(f"{f} ({n} rows)" for f, n in sorted(extra.items()))
    return {"path": str(folder), "name": suite.name, "version": suite.version, "hash": suite.hash, "items": len(suite.items),
            "instructions": dict(sorted(counts.items())), "note": note}


__all__ = ["import_ifeval"]
