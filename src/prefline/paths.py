"""Files the user names on the command line: one rule for every input file and every ``--out``.

An input must be an existing file (a folder or a missing path is a one-line error that says
which). An output file's folder must already exist: prefline never creates a folder tree from a
mistyped path, and never writes over a folder.
"""

from __future__ import annotations

from pathlib import Path

from prefline.errors import PreflineError


def input_file(path: str | Path, what: str = "input file") -> Path:
    """``path`` if it is a readable file; otherwise a PreflineError that says what is there instead."""
    path = Path(path)
    if path.is_dir():
        raise PreflineError(f"{path}: is a folder, not a file; give the {what} itself")
    if not path.exists():
        raise PreflineError(f"{path}: no such file")
    if not path.is_file():
        raise PreflineError(f"{path}: not a regular file")
    return path


def output_file(path: str | Path) -> Path:
    """``path`` if a file can be written there: its folder exists and it is not itself a folder."""
    path = Path(path)
    if path.is_dir():
        raise PreflineError(f"{path}: is a folder; give a file name to write, e.g. {path / 'report.html'}")
    folder = path.parent
    if not folder.is_dir():
        raise PreflineError(f"{path}: folder {folder} does not exist (prefline does not create folders for --out; create it first)")
    return path
