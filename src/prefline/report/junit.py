"""JUnit XML of a gate decision: one test case per check, so any CI shows them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from prefline.gate.compare import GateResult


def gate_junit(result: GateResult) -> str:
    """A ``testsuite`` named after the decision; a failing check is a ``failure``, an inconclusive one a
    ``skipped`` (or a ``failure`` when its rule says inconclusive means fail), each with its numbers."""
    suite = ET.Element("testsuite", name=f"prefline gate: run {result.candidate_run} vs run {result.baseline_run} ({result.policy})",
                       tests=str(len(result.checks)), failures=str(len(result.failures)),
                       skipped=str(sum(c.outcome != "fail" and c.status in ("inconclusive", "not applicable") for c in result.checks)))
    props = ET.SubElement(suite, "properties")
    for key, value in [("verdict", result.verdict), ("decision_id", result.decision_id), ("correction", result.correction),
                       ("error_rate", result.error_rate), *[(f"axis.{a}", v) for a, v in result.axes.items()]]:
        ET.SubElement(props, "property", name=key, value=str(value))
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{c.kind}.{c.metric}", name=c.name)
        numbers = (f"n={c.n} baseline={c.baseline:.4g} candidate={c.candidate:.4g} estimate={c.estimate} interval=[{c.low}, {c.high}] "
                   f"p={c.p_value} p_adjusted={c.p_adjusted} items_needed={c.items_needed}")
        if c.outcome == "fail":
            ET.SubElement(case, "failure", message=f"{c.status}: {c.reason}", type=c.status).text = numbers
        elif c.status in ("inconclusive", "not applicable"):
            ET.SubElement(case, "skipped", message=f"{c.status}: {c.reason}").text = numbers
        else:
            ET.SubElement(case, "system-out").text = numbers
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write_gate_junit(result: GateResult, path: str | Path) -> None:
    from prefline.paths import output_file

    output_file(path).write_text(gate_junit(result) + "\n", encoding="utf-8")
