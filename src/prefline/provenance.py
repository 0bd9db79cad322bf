"""What every ledger record says about where it came from: software versions and adapter folders.

Kept apart from ``prefline.train`` so that evaluating a base model does not import the
training stack (TRL, PEFT and the transformers Trainer take seconds to import).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from prefline.errors import PreflineError


def software_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("prefline", "torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def adapter_path(adapter: dict[str, Any]) -> Path:
    """The adapter's folder: a PEFT adapter, or a full model for ``finetune: full``; checked to hold one."""
    path = Path(adapter["path"])
    if not (path / "adapter_config.json").is_file() and not is_full_model(path):
        raise PreflineError(f"adapter {adapter['name']!r}: its folder {path} has neither adapter_config.json nor config.json")
    return path


def load_full_model(path: Path):
    """A fully fine-tuned model folder's causal LM (its lineage, hash included, is in the adapter's record)."""
    from prefline.models import ModelRef, load_model

    return load_model(ModelRef(spec=str(path), path=str(path), hash=""))


def is_full_model(path: Path) -> bool:
    """A fully fine-tuned model folder (``finetune: full``) rather than a PEFT adapter."""
    return not (path / "adapter_config.json").is_file() and (path / "config.json").is_file()
