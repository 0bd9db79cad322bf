"""Plots for the HTML reports: matplotlib figures turned into inline SVG.

Text stays text in the SVG (``svg.fonttype: none``): it takes the page's font, can be
searched and copied, and matplotlib escapes it, so a slice or metric name cannot inject
markup. Each helper returns ``Markup`` ready for a template, or ``None`` when there is
nothing to draw.
"""

from __future__ import annotations

import io
import re
from typing import Any, Sequence

from prefline.errors import PreflineError

# A calm palette that stays distinguishable in grey and for the common colour deficiencies.
COLORS = ("#3b6ea8", "#d9822b", "#4a9b5f", "#b04a4a", "#7d5ba6", "#8c8c8c")
STYLE = {
    "svg.fonttype": "none", "font.size": 10, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.color": "#e3e3e3", "grid.linewidth": 0.8, "axes.axisbelow": True,
    "axes.edgecolor": "#888888", "axes.titlesize": 11, "axes.titleweight": "bold", "axes.titlelocation": "left",
    "legend.frameon": False, "figure.dpi": 96,
}


def pyplot():  # noqa: ANN202
    try:
        import matplotlib
    except ImportError as exc:
        raise PreflineError("the HTML reports' plots need matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def svg(fig) -> Any:  # noqa: ANN001
    """The figure as an inline ``<svg>`` element (no XML prolog, scales with the page)."""
    from markupsafe import Markup

    plt = pyplot()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)  # creator credits with a web address
    # drop the fixed size: the viewBox keeps the aspect ratio and CSS sets the width
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="plot" role="img"', text, count=1)
    return Markup(text)


def short(label: str, limit: int = 22) -> str:
    """A label cut to ``limit`` characters, so one long user-given name cannot squeeze the plot (tables show it whole)."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def line_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str, ylabel: str,
               reference: float | None = None, ylim: tuple[float, float] | None = None, width: float = 6.0, height: float = 2.8) -> Any:
    """One line per named series of (x, y) over integer x (steps); ``reference`` draws a dashed horizontal
    line (e.g. chance); ``ylim`` fixes the y range (shares: 0 to 1), else matplotlib picks it."""
    series = {name: (x, y) for name, (x, y) in series.items() if len(x)}
    if not series:
        return None
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(width, height))
        for i, (name, (x, y)) in enumerate(series.items()):
            ax.plot(list(x), list(y), color=COLORS[i % len(COLORS)], linewidth=1.8, marker="o" if len(x) <= 12 else None,
                    markersize=3.5, label=name)
        if reference is not None:
            ax.axhline(reference, color="#555555", linestyle="--", linewidth=1)
        if ylim is not None:
            pad = (ylim[1] - ylim[0]) * 0.04
            ax.set_ylim(ylim[0] - pad, ylim[1] + pad)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(loc="best", fontsize=9)
        return svg(fig)


def interval_chart(rows: list[dict[str, Any]], title: str, xlabel: str) -> Any:
    """Shares (0 to 1) as horizontal means with their intervals, one row per ``{"label", "mean", "ci"}`` (top to bottom)."""
    rows = [r for r in rows if r.get("mean") is not None]
    if not rows:
        return None
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 0.32 * len(rows) + 0.9))
        y = list(range(len(rows)))
        means = [r["mean"] for r in rows]
        low = [r["mean"] - r["ci"][0] for r in rows]
        high = [r["ci"][1] - r["mean"] for r in rows]
        ax.errorbar(means, y, xerr=[low, high], fmt="o", color=COLORS[0], ecolor="#9bb4d4", elinewidth=3, capsize=0, markersize=5)
        ax.set_xlim(-0.03, 1.03)
        ax.set_yticks(y, [r["label"] for r in rows])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        return svg(fig)


def change_chart(rows: list[dict[str, Any]], title: str, xlabel: str) -> Any:
    """Changes (candidate − baseline) as points with their intervals, one row per ``{"label", "mean", "ci"}``
    (top to bottom), around a line at zero: a forest plot."""
    rows = [r for r in rows if r.get("mean") is not None and r.get("ci") and None not in r["ci"]]
    if not rows:
        return None
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 0.34 * len(rows) + 1.0))
        y = list(range(len(rows)))
        means = [r["mean"] for r in rows]
        low = [max(0.0, r["mean"] - r["ci"][0]) for r in rows]
        high = [max(0.0, r["ci"][1] - r["mean"]) for r in rows]
        ax.axvline(0.0, color="#555555", linewidth=1)
        ax.errorbar(means, y, xerr=[low, high], fmt="o", color=COLORS[3], ecolor="#e3a9a9", elinewidth=3, capsize=0, markersize=5)
        ax.set_yticks(y, [r["label"] for r in rows])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        return svg(fig)


def timeline_chart(labels: Sequence[str], series: dict[str, Sequence[float | None]], title: str, ylabel: str,
                   ylim: tuple[float, float] | None = None) -> Any:
    """One line per named series over ordered labelled points (releases, oldest first); None is a gap."""
    series = {name: list(v) for name, v in series.items() if any(x is not None for x in v)}
    if not series or not labels:
        return None
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.4, 2.7))
        x = list(range(len(labels)))
        for i, (name, values) in enumerate(series.items()):
            ax.plot(x, [float("nan") if v is None else v for v in values], color=COLORS[i % len(COLORS)], linewidth=1.8,
                    marker="o", markersize=4, label=name)
        if ylim is not None:
            pad = (ylim[1] - ylim[0]) * 0.04
            ax.set_ylim(ylim[0] - pad, ylim[1] + pad)
        ax.set_xticks(x, [short(label) for label in labels], rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(loc="best", fontsize=8)
        return svg(fig)


def tradeoff_chart(points: list[dict[str, Any]], y_label: str, panels: list[tuple[str, str]], title: str) -> Any:
    """The tradeoff surface: one panel per ``(key, label)`` in ``panels`` with that cost across and ``y_label``
    up; one point per ``{"label", "y", key..., "kind"}`` (kind ``release`` filled, ``candidate`` hollow), named."""
    panels = [(k, label) for k, label in panels if any(p.get(k) is not None and p.get("y") is not None for p in points)]
    if not panels:
        return None
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
        for ax, (key, label) in zip(axes[0], panels):
            for kind, style in (("release", {"color": COLORS[0], "edgecolors": COLORS[0]}),
                                ("candidate", {"color": "none", "edgecolors": COLORS[3]})):
                mine = [p for p in points if p["kind"] == kind and p.get(key) is not None and p.get("y") is not None]
                if mine:
                    ax.scatter([p[key] for p in mine], [p["y"] for p in mine], s=46, linewidths=1.6, label=kind, zorder=3, **style)
                    for p in mine:
                        ax.annotate(short(p["label"]), (p[key], p["y"]), textcoords="offset points", xytext=(5, 4), fontsize=8, color="#444444")
            ax.set_xlabel(f"{label} (lower is better)")
            ax.set_ylabel(y_label)
        axes[0][0].set_title(title)
        axes[0][-1].legend(loc="best", fontsize=8)
        fig.tight_layout()
        return svg(fig)
