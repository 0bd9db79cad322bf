"""A dataset quality report as one self-contained HTML page.

Rendered with jinja2 (autoescaping on: pair ids, slice values, source names and suite
prompts are user text) from the report's JSON data alone; the plots are matplotlib PNGs
embedded as base64, so the page needs no other file and runs no script.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from prefline.errors import PreflineError

TEMPLATE = "data_report.html.j2"


def render_html(report: dict[str, Any]) -> str:
    try:
        import jinja2
    except ImportError as exc:
        raise PreflineError("the HTML report needs jinja2: pip install jinja2") from exc
    from importlib import resources

    folder = resources.files("prefline") / "resources" / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "" if v is None else f"{v:.1%}"
    return env.get_template(TEMPLATE).render(r=report, plots=plots(report))


def write_html(report: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise PreflineError(f"{path}: folder {path.parent} does not exist")
    path.write_text(render_html(report), encoding="utf-8")
    return path


def plots(report: dict[str, Any]) -> dict[str, str]:
    """Base64 PNGs: coverage bars against targets, the length-ratio histogram, the close-call distribution."""
    try:
        import matplotlib
    except ImportError as exc:
        raise PreflineError("the HTML report's plots need matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg", force=True)
    out = {}
    coverage = _coverage_plot(report["coverage"])
    if coverage:
        out["coverage"] = coverage
    hist = report["bias"]["length_ratio_log2_histogram"]
    out["length_ratio"] = _histogram(hist["edges"], hist["counts"], "log2(chosen words / rejected words)", "pairs",
                                     "chosen shorter  ←  equal  →  chosen longer")
    close = report["negatives"].get("close_calls")
    if close:
        out["close_calls"] = _histogram(close["histogram"]["edges"], close["histogram"]["counts"],
                                        "close-call score (1 = the reference model cannot tell them apart)", "pairs",
                                        f"{close['pairs_scored']} pairs scored with {close['model']}")
    return out


def _png(fig) -> str:  # noqa: ANN001
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _coverage_plot(coverage: dict[str, Any]) -> str | None:
    import matplotlib.pyplot as plt

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
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(labels) + 1))
    y = range(len(labels))
    short = [bool(targets.get(tuple(label.split("=", 1)), {}).get("shortfall")) for label in labels]
    ax.barh(list(y), shares, color=["#c0392b" if s else "#4a7ab8" for s in short])
    for i, goal in enumerate(goals):
        if goal is not None:
            ax.plot([goal, goal], [i - 0.4, i + 0.4], color="black", linewidth=2)
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel("share of pairs (black mark: target; red: shortfall)")
    return _png(fig)


def _histogram(edges: list[float], counts: list[int], xlabel: str, ylabel: str, title: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color="#4a7ab8", edgecolor="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return _png(fig)
