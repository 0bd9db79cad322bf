"""Text from users and models (names, slice tags, sources, outputs), made safe to print to a terminal.

rich reads ``[bold]`` as markup, so a slice value such as ``[/bold]`` would crash a table; and a
terminal obeys escape sequences, so an ESC in a model's output could recolour or rewrite the screen.
``plain`` shows control characters as escapes (``\\x1b``); ``safe`` also escapes rich markup.
"""

from __future__ import annotations

import re
from typing import Any

from rich.markup import escape

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and newline


def plain(value: Any) -> str:
    """``value`` as text with control characters written as escapes, for printing with ``markup=False``."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], str(value))


def safe(value: Any) -> str:
    """``value`` as text to embed in rich markup: control characters as escapes, markup escaped."""
    return escape(plain(value))
