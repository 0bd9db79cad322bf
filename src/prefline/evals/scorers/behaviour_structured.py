"""Finding JSON and tool calls in a response, and checking them against what the item expects."""

from __future__ import annotations

import json
import re
from typing import Any

FENCED = re.compile(r"```[ \t]*([\w-]*)[ \t]*\n(.*?)\n?```", re.DOTALL)


def parse_json_response(text: str) -> tuple[Any, dict[str, Any]]:
    """The response as one JSON value: the whole text, else the first fenced block that parses.

    Returns ``(value, evidence)``; evidence says where the JSON came from (``whole response`` or
    ``fenced block``, with whether prose surrounds the fence) or why nothing parsed. A response
    that is not JSON returns ``(None, {"parsed": False, ...})``; a literal ``null`` is parsed.
    """
    body = text.strip()
    try:
        return json.loads(body), {"parsed": True, "from": "whole response"}
    except json.JSONDecodeError as exc:
        error = f"{exc.msg} at char {exc.pos}"
    for match in FENCED.finditer(text):
        try:
            value = json.loads(match.group(2))
        except json.JSONDecodeError:
            continue
        outside = (text[:match.start()] + text[match.end():]).strip()
        return value, {"parsed": True, "from": f"fenced ```{match.group(1)} block", "prose_outside_fence": bool(outside)}
    return None, {"parsed": False, "error": error}


def schema_errors(value: Any, schema: dict[str, Any], limit: int = 5) -> list[str]:
    """Validation errors of ``value`` against a JSON Schema (the draft its ``$schema`` names, else 2020-12)."""
    from jsonschema.validators import validator_for

    cls = validator_for(schema)
    cls.check_schema(schema)
    errors = sorted(cls(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:limit]]


# --- tool calls -------------------------------------------------------------------------------------


def json_objects(text: str) -> list[Any]:
    """Every JSON object or array embedded in the text, outermost first, in order of appearance."""
    decoder = json.JSONDecoder()
    found, position = [], 0
    while True:
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            return found
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        found.append(value)
        position = end


def _arguments(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):  # OpenAI sends arguments as a JSON string
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def as_tool_calls(value: Any) -> list[dict[str, Any]]:
    """The tool calls a JSON value expresses, as ``{"name", "arguments"}`` dicts. Understood shapes:
    ``{"name", "arguments"|"parameters"|"args"}``, ``{"tool", "args"|"arguments"|"parameters"}``,
    ``{"function": {"name", "arguments"}}`` (an OpenAI tool call), ``{"tool_calls": [...]}`` and lists of these."""
    if isinstance(value, list):
        return [call for v in value for call in as_tool_calls(v)]
    if not isinstance(value, dict):
        return []
    if "tool_calls" in value:
        return as_tool_calls(value["tool_calls"])
    if isinstance(value.get("function"), dict):
        return as_tool_calls(value["function"])
    name = value.get("name", value.get("tool"))
    if not isinstance(name, str):
        return []
    raw = next((value[k] for k in ("arguments", "args", "parameters", "input") if k in value), {})
    args = _arguments(raw)
    return [{"name": name, "arguments": args if args is not None else raw}]


def find_tool_calls(text: str) -> list[dict[str, Any]]:
    """Tool calls anywhere in the response: bare, fenced, inside ``<tool_call>`` tags or prose."""
    return [call for value in json_objects(text) for call in as_tool_calls(value)]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def same_value(expected: Any, got: Any) -> bool:
    """Equal as a model would mean it: numbers as numbers ("5" equals 5), strings without case or
    surrounding space, lists item by item, objects on the expected keys (extra keys allowed)."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected == got or str(expected).lower() == str(got).strip().lower()
    if _number(expected) is not None and _number(got) is not None and not (isinstance(expected, str) and isinstance(got, str)):
        return abs(_number(expected) - _number(got)) < 1e-9
    if isinstance(expected, str) and isinstance(got, str):
        return expected.strip().casefold() == got.strip().casefold()
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(same_value(e, g) for e, g in zip(expected, got))
    if isinstance(expected, dict) and isinstance(got, dict):
        return all(k in got and same_value(v, got[k]) for k, v in expected.items())
    return expected == got


def argument_mismatches(expected: dict[str, Any], got: Any) -> list[str]:
    if not isinstance(got, dict):
        return [f"arguments are not an object: {got!r}"]
    out = []
    for key, value in expected.items():
        if key not in got:
            out.append(f"{key}: missing")
        elif not same_value(value, got[key]):
            out.append(f"{key}: expected {value!r}, got {got[key]!r}")
    return out


__all__ = ["argument_mismatches", "as_tool_calls", "find_tool_calls", "json_objects", "parse_json_response", "same_value", "schema_errors"]
