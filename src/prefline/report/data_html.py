"""A dataset quality report as one self-contained HTML page.

Rendered from the report's JSON alone with the shared report template (autoescaping on: pair
ids, slice values, source names and suite prompts are user text); the plots are inline SVG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATE = "data_report.html.j2"


def render_html(report: dict[str, Any]) -> str:
    from prefline.report.html import render

    return render(TEMPLATE, r=report, plots=plots(report))


def write_html(report: dict[str, Any], path: str | Path) -> Path:
    from prefline.report.html import write

    return write(render_html(report), path)


def plots(report: dict[str, Any]) -> dict[str, Any]:
    """Inline SVGs: coverage bars against targets, the length-ratio histogram, the close-call distribution."""
    out: dict[str, Any] = {"coverage": _coverage_plot(report["coverage"]), "close_calls": None}  # a plot may be absent
    hist = report["bias"]["length_ratio_log2_histogram"]
    out["length_ratio"] = _histogram(hist["edges"], hist["counts"], "log2(chosen words / rejected words)", "pairs",
                                     "chosen shorter  ←  equal  →  chosen longer")
    close = report["negatives"].get("close_calls")
    if close:
        out["close_calls"] = _histogram(close["histogram"]["edges"], close["histogram"]["counts"],
                                        "close-call score (1 = the reference model cannot tell them apart)", "pairs",
                                        f"{close['pairs_scored']} pairs scored with {close['model']}")
    return out


def _coverage_plot(coverage: dict[str, Any]) -> Any:
    from prefline.report.plots import STYLE, pyplot, svg

    n = max(coverage["pairs"], 1)
    targets = {(t["key"], t["value"]): t for t in coverage["targets"]}
    labels, shares, goals = [], [], []
    for key, values in coverage["keys"].items():
        for value, count in values.items():
            labels.append(f"{key}={value}")
            shares.append(count / n)
            goals.append(targets.get((key, value), {}).get("target_share"))
    for (key, value), t in targets.items():
        if f"{key}={value}" not in labels:
            labels.append(f"{key}={value}")
            shares.append(0.0)
            goals.append(t["target_share"])
    if not labels:
        return None
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(labels) + 1))
        y = range(len(labels))
        short = [bool(targets.get(tuple(label.split("=", 1)), {}).get("shortfall")) for label in labels]
        ax.barh(list(y), shares, color=["#b42318" if s else "#3b6ea8" for s in short])
        for i, goal in enumerate(goals):
            if goal is not None:
                ax.plot([goal, goal], [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.set_yticks(list(y), labels)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("share of pairs (black mark: target; red: shortfall)")
        return svg(fig)


def _histogram(edges: list[float], counts: list[int], xlabel: str, ylabel: str, title: str) -> Any:
    from prefline.report.plots import STYLE, pyplot, svg

    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 3))
        widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color="#3b6ea8", edgecolor="white")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9, fontweight="normal")
        return svg(fig)
