"""One jinja2 environment for every HTML report: autoescaping on, strict undefined, shared filters.

A report is one template that extends ``base.html.j2`` plus one function that turns the
report's JSON into the template's context. The page is self-contained (styles, the small
search script and the SVG plots are inline), so it opens offline from a file.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefline.errors import PreflineError


@lru_cache(maxsize=1)
def environment():  # noqa: ANN201
    try:
        import jinja2
    except ImportError as exc:
        raise PreflineError("the HTML reports need jinja2: pip install jinja2") from exc
    from importlib import resources

    folder = resources.files("prefline") / "resources" / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, num=num, interval=interval, signed=signed, when=when)
    return env


def render(template: str, **context: Any) -> str:
    """Render one report template; every value in ``context`` is escaped unless it is a ``Markup`` plot."""
    return environment().get_template(template).render(**context)


def write(text: str, path: str | Path) -> Path:
    """Write a rendered report, failing with one line when the path is a folder or its folder is missing."""
    from prefline.paths import output_file

    path = output_file(path)
    path.write_text(text, encoding="utf-8")
    return path


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value: Any, digits: int = 1) -> str:
    return "" if _missing(value) else f"{value:.{digits}%}"


def num(value: Any, digits: int = 3) -> str:
    """A number for a table cell: integers as they are, floats to ``digits`` places."""
    if _missing(value):
        return "–"
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)  # a name (a method, a dataset version) where a cause's old/new is not a number
    return f"{value:.{digits}f}"


def signed(value: Any, digits: int = 3) -> str:
    return "–" if _missing(value) else f"{value:+.{digits}f}"


def interval(ci: Any, digits: int = 3) -> str:
    """``[low, high]`` of a two-element interval, or a dash."""
    if not ci or any(_missing(v) for v in ci):
        return "–"
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def when(value: Any) -> str:
    """A ledger timestamp (UTC) to the minute: ``2026-12-03 09:39 UTC``."""
    if value is None:
        return ""
    text = value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)
    return f"{text[:16]} UTC"
