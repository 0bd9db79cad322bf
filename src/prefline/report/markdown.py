"""Markdown for pull-request comments and terminals: small tables whose cells cannot break the table."""

from __future__ import annotations

from typing import Any, Sequence

_SPECIAL = str.maketrans({"|": r"\|", "`": r"\`", "*": r"\*", "_": r"\_", "<": "&lt;", ">": "&gt;", "[": r"\[", "]": r"\]"})


def cell(value: Any) -> str:
    """One table cell: markdown and HTML specials escaped, newlines folded, so user text stays text."""
    return " ".join(str("" if value is None else value).split()).translate(_SPECIAL)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
