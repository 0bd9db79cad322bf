"""Verifiable instructions: each type is a named check of a response, registered with its params.

An instruction is ``{"type": ..., "params": {...}}`` on a suite item (``SuiteItem.constraints``).
Every type declares the parameters it takes, so a suite can be checked before any model runs
(:func:`constraint_problems`), and a check returns its decision and a one-line reason.

Strict means the response as written. Loose forgives what a reader would forgive: the
instruction passes if any of eight variants of the response passes, namely the response with
its first line, last line, both or neither removed (a "Sure, here it is:" or "Hope this helps!"
wrapper), each with and without markdown emphasis (``**``, ``*``, ``__``) removed. Loose is
therefore never stricter than strict.

(A little over 400 lines: one short check per instruction type, kept beside the registry that
declares their parameters.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefline.errors import PreflineError
from prefline.registry import Registry
from prefline.evals.scorers.behaviour_language import detect_language
from prefline.text.words import count_words

Check = Callable[[str, dict[str, Any]], tuple[bool, str]]
RELATIONS = ("at_least", "at_most", "exactly")


# --- parameter kinds: each returns a problem or None --------------------------------------


def _count(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"must be a non-negative integer, got {value!r}"
    return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"must be a non-empty string, got {value!r}"
    return None


def _keywords(value: Any) -> str | None:
    if not isinstance(value, list) or not value or any(_text(v) for v in value):
        return f"must be a non-empty list of non-empty strings, got {value!r}"
    return None


def _relation(value: Any) -> str | None:
    if value not in RELATIONS:
        return f"must be one of {', '.join(RELATIONS)}, got {value!r}"
    return None


def _letter(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) != 1 or not value.isalpha():
        return f"must be a single letter, got {value!r}"
    return None


def _language(value: Any) -> str | None:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z]{2}", value):
        return f"must be a two-letter ISO 639-1 code such as 'en', got {value!r}"
    return None


@dataclass(frozen=True)
class Instruction:
    name: str
    check: Check
    params: dict[str, Callable[[Any], str | None]]
    description: str
    loose: Callable[[str], list[str]] | None = None  # the response and its loose variants; None: prefline's
    blank_fails: bool = False  # a blank response (or loose variant) fails whatever the check says, as in IFEval


INSTRUCTIONS: Registry[Instruction] = Registry("instruction type")


def instruction(name: str, *, loose: Callable[[str], list[str]] | None = None, **params: Callable[[Any], str | None]):
    """Register ``check(response, params) -> (followed, why)`` as the instruction type ``name``.

    ``loose``: how loose checking varies the response (the response first, then its variants);
    given, it also makes a blank response fail, which is IFEval's rule for its own types.
    """

    return INSTRUCTIONS.decorator(name, lambda fn: Instruction(name, fn, params, (fn.__doc__ or "").strip(), loose=loose,
                                                               blank_fails=loose is not None))


def param_problems(kind: str, params: dict[str, Any]) -> list[str]:
    """What is wrong with one instruction's type and params (empty when it can be checked)."""
    if kind not in INSTRUCTIONS:
        return [f"unknown instruction type {kind!r}; known: {', '.join(sorted(INSTRUCTIONS))}"]
    spec = INSTRUCTIONS[kind].params
    problems = [f"missing param {p!r}" for p in spec if p not in params]
    problems += [f"unexpected param {p!r} (takes: {', '.join(spec) or 'none'})" for p in params if p not in spec]
    problems += [f"param {p!r} {why}" for p, validate in spec.items() if p in params and (why := validate(params[p]))]
    return problems


def constraint_problems(item) -> list[str]:
    """Every bad constraint of a suite item, as ``item ID: constraint N (TYPE): problem``."""
    out = []
    for index, (kind, params) in enumerate(item.instructions()):
        where = f"constraint {index}" if index < len(item.constraints) else f"instruction_id_list[{index - len(item.constraints)}]"
        for problem in param_problems(kind, params):
            out.append(f"item {item.id}: {where} ({kind}): {problem}")
    return out


def validate_constraints(item) -> None:
    problems = constraint_problems(item)
    if problems:
        raise PreflineError("; ".join(problems))


# --- strict and loose ------------------------------------------------------------------------

EMPHASIS = re.compile(r"\*\*|__|\*")


def loose_variants(text: str) -> list[str]:
    lines = text.split("\n")
    trimmed = [text, "\n".join(lines[1:]), "\n".join(lines[:-1]), "\n".join(lines[1:-1])]
    return [v for t in trimmed for v in (t, EMPHASIS.sub("", t))]


def check_instruction(kind: str, params: dict[str, Any], text: str) -> dict[str, Any]:
    """One instruction on one response: strict and loose decisions, and why."""
    spec = INSTRUCTIONS[kind]

    def check(variant: str) -> tuple[bool, str]:
        if spec.blank_fails and not variant.strip():
            return False, "empty response"
        return spec.check(variant, params)

    strict, why = check(text)
    loose, loose_why = strict, why
    if not strict:
        for variant in (spec.loose or loose_variants)(text)[1:]:
            ok, variant_why = check(variant)
            if ok:
                loose, loose_why = True, f"after trimming a wrapper line or emphasis: {variant_why}"
                break
    result = {"type": kind, "params": params, "strict": strict, "loose": loose, "why": why}
    if loose_why != why:
        result["loose_why"] = loose_why
    return result


def by_instruction_type(evidences: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Aggregate stored ``instruction_*`` evidence per instruction type: n and share followed."""
    totals: dict[str, list[int]] = {}
    for evidence in evidences:
        for result in evidence.get("instructions", []):
            row = totals.setdefault(result["type"], [0, 0, 0])
            row[0] += 1
            row[1] += int(result["strict"])
            row[2] += int(result["loose"])
    return {kind: {"n": n, "strict": s / n, "loose": lo / n} for kind, (n, s, lo) in sorted(totals.items())}


# --- counting helpers -------------------------------------------------------------------------

ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|etc|vs|Mr|Mrs|Ms|Dr|Prof|St|No|approx)\.", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n\s*\n")


def sentences(text: str) -> list[str]:
    protected = ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "\x00"), text)
    parts = SENTENCE_END.split(protected)
    return [p.replace("\x00", ".").strip() for p in parts if re.search(r"\w", p)]


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _compare(count: int, n: int, relation: str) -> bool:
    return {"at_least": count >= n, "at_most": count <= n, "exactly": count == n}[relation]


def _relation_words(relation: str) -> str:
    return relation.replace("_", " ")


def _occurrences(text: str, phrase: str) -> int:
    return len(re.findall(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE))


# --- the instruction types ----------------------------------------------------------------------


@instruction("max_words", n=_count)
def max_words(text, p):
    """At most n words."""
    count = count_words(text)
    return count <= p["n"], f"{count} words (limit {p['n']})"


@instruction("min_words", n=_count)
def min_words(text, p):
    """At least n words."""
    count = count_words(text)
    return count >= p["n"], f"{count} words (minimum {p['n']})"


@instruction("max_sentences", n=_count)
def max_sentences(text, p):
    """At most n sentences (split at . ! ? and blank lines; common abbreviations kept whole)."""
    count = len(sentences(text))
    return count <= p["n"], f"{count} sentences (limit {p['n']})"


@instruction("min_sentences", n=_count)
def min_sentences(text, p):
    """At least n sentences."""
    count = len(sentences(text))
    return count >= p["n"], f"{count} sentences (minimum {p['n']})"


@instruction("paragraphs", n=_count)
def exact_paragraphs(text, p):
    """Exactly n paragraphs, separated by blank lines."""
    count = len(paragraphs(text))
    return count == p["n"], f"{count} paragraphs (required {p['n']})"


BULLET = re.compile(r"^\s*[-*+]\s+\S", re.MULTILINE)


@instruction("bullets", n=_count)
def bullets(text, p):
    """Exactly n markdown bullet points (lines starting with -, * or + and a space)."""
    count = len(BULLET.findall(text))
    return count == p["n"], f"{count} bullet points (required {p['n']})"


@instruction("sections", n=_count, marker=_text)
def sections(text, p):
    """Exactly n sections, each starting on a line that begins with the marker (a markdown heading
    ``#`` may precede it), e.g. ``SECTION 1``; no text may come before the first section."""
    marker = re.compile(rf"^[ \t]*(?:#{{1,6}}[ \t]*)?{re.escape(p['marker'])}(?:[ \t]*\d+)?\b", re.MULTILINE)
    starts = [m.start() for m in marker.finditer(text)]
    if starts and text[:starts[0]].strip():
        return False, f"text before the first {p['marker']!r} section: {text[:starts[0]].strip()[:40]!r}"
    return len(starts) == p["n"], f"{len(starts)} sections marked {p['marker']!r} (required {p['n']})"


HIGHLIGHT = re.compile(r"\*\*(?=[^\s*])[^\n*]+(?<=[^\s*])\*\*|\*(?=[^\s*])[^\n*]+(?<=[^\s*])\*")  # no space just inside the stars


@instruction("highlights", n=_count)
def highlights(text, p):
    """At least n highlighted spans written *like this* (or **like this**)."""
    count = len(HIGHLIGHT.findall(text))
    return count >= p["n"], f"{count} highlighted spans (minimum {p['n']})"


PLACEHOLDER = re.compile(r"\[[^\[\]\n]*\w[^\[\]\n]*\]")


@instruction("placeholders", n=_count)
def placeholders(text, p):
    """At least n placeholders in square brackets, such as [name]."""
    count = len(PLACEHOLDER.findall(text))
    return count >= p["n"], f"{count} [placeholders] (minimum {p['n']})"


@instruction("include_keywords", keywords=_keywords)
def include_keywords(text, p):
    """Every keyword appears (case-insensitive, as a whole word or phrase)."""
    missing = [k for k in p["keywords"] if not _occurrences(text, k)]
    return not missing, f"missing {missing}" if missing else "all keywords present"


@instruction("exclude_keywords", keywords=_keywords)
def exclude_keywords(text, p):
    """No keyword appears (case-insensitive, as a whole word or phrase)."""
    present = [k for k in p["keywords"] if _occurrences(text, k)]
    return not present, f"contains {present}" if present else "no excluded keyword"


@instruction("keyword_frequency", keyword=_text, n=_count, relation=_relation)
def keyword_frequency(text, p):
    """The keyword appears at least / at most / exactly n times (case-insensitive, whole words)."""
    count = _occurrences(text, p["keyword"])
    return _compare(count, p["n"], p["relation"]), f"{p['keyword']!r} appears {count} times (required {_relation_words(p['relation'])} {p['n']})"


@instruction("letter_frequency", letter=_letter, n=_count, relation=_relation)
def letter_frequency(text, p):
    """The letter appears at least / at most / exactly n times (case-insensitive)."""
    count = text.lower().count(p["letter"].lower())
    return _compare(count, p["n"], p["relation"]), f"letter {p['letter']!r} appears {count} times (required {_relation_words(p['relation'])} {p['n']})"


FENCE = re.compile(r"^```[\w-]*[ \t]*\n(.*)\n```$", re.DOTALL)


@instruction("json_only")
def json_only(text, p):
    """The whole response is one JSON value (a single ``` fence around it is allowed)."""
    body = text.strip()
    fenced = FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        return False, f"not JSON: {exc.msg} at char {exc.pos}"
    return True, "parses as JSON" + (" inside a ``` fence" if fenced else "")


@instruction("lowercase")
def lowercase(text, p):
    """No capital letters."""
    capitals = [w for w in re.findall(r"\w+", text) if w != w.lower()]
    return not capitals, f"capitalized: {capitals[:5]}" if capitals else "all lowercase"


@instruction("uppercase")
def uppercase(text, p):
    """No lowercase letters."""
    lower = [w for w in re.findall(r"\w+", text) if w != w.upper()]
    return not lower, f"not capitalized: {lower[:5]}" if lower else "all uppercase"


@instruction("no_commas")
def no_commas(text, p):
    """No commas at all."""
    count = text.count(",") + text.count("，")
    return count == 0, f"{count} commas"


QUOTES = {'"': '"', "“": "”"}


@instruction("quoted")
def quoted(text, p):
    """The whole response is wrapped in double quotes ("..." or “...”)."""
    body = text.strip()
    ok = len(body) >= 2 and body[0] in QUOTES and body[-1] == QUOTES[body[0]]
    return ok, "wrapped in double quotes" if ok else f"starts with {body[:1]!r} and ends with {body[-1:]!r}"


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@instruction("start_with", phrase=_text)
def start_with(text, p):
    """The response starts with the phrase (case and spacing ignored)."""
    ok = _squash(text).startswith(_squash(p["phrase"]))
    return ok, f"starts with {text.strip()[:len(p['phrase']) + 10]!r}"


@instruction("end_with", phrase=_text)
def end_with(text, p):
    """The response ends with the phrase (case and spacing ignored); nothing may follow it."""
    ok = _squash(text).endswith(_squash(p["phrase"]))
    return ok, f"ends with {text.strip()[-len(p['phrase']) - 10:]!r}"


@instruction("title")
def title(text, p):
    """A title wrapped in double angular brackets, such as <<a title>>."""
    match = re.search(r"<<([^\n<>]*\w[^\n<>]*)>>", text)
    return bool(match), f"title {match.group(1)!r}" if match else "no <<title>>"


@instruction("postscript", marker=_text)
def postscript(text, p):
    """A postscript: a line starting with the marker (e.g. "P.S."), with text after the marker."""
    pattern = "".join(r"\s*" if c.isspace() else re.escape(c) + (r"\s?" if c == "." else "") for c in p["marker"].strip())
    match = re.search(rf"^\s*{pattern}\s*(\S.*)?$", text, re.IGNORECASE | re.MULTILINE)
    if not match:
        return False, f"no line starting with {p['marker']!r}"
    return bool(match.group(1)), "postscript present" if match.group(1) else f"{p['marker']!r} with nothing after it"


@instruction("language", code=_language)
def language(text, p):
    """Written in the language with this ISO 639-1 code (detected by ``langdetect``; see
    ``behaviour_language`` for the fallback)."""
    code, how = detect_language(text)
    return code == p["code"], f"detected {code or 'nothing'} ({how})"


@instruction("max_chars", n=_count)
def max_chars(text, p):
    """At most n characters, whitespace included."""
    return len(text) <= p["n"], f"{len(text)} characters (limit {p['n']})"


# IFEval's types register themselves into INSTRUCTIONS under their own ids.
from prefline.evals.scorers import behaviour_ifeval  # noqa: E402,F401

__all__ = ["INSTRUCTIONS", "Instruction", "by_instruction_type", "check_instruction", "constraint_problems",
           "instruction", "loose_variants", "param_problems", "validate_constraints"]
