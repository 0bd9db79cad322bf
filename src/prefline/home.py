"""Where prefline keeps its state: $PREFLINE_HOME (default ~/.prefline)."""

from __future__ import annotations

import os
from pathlib import Path


def prefline_home() -> Path:
    """The root folder for the ledger, datasets, adapters and the dequantized model cache."""
    home = Path(os.environ.get("PREFLINE_HOME", "~/.prefline")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def home_dir(*parts: str) -> Path:
    """A sub-folder of the home, created on first use (e.g. ``home_dir("datasets", "demo")``)."""
    path = prefline_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
