"""Content hashes: every dataset, suite item, model and adapter is identified by what it holds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal content always serializes equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def file_hash(path: Path, chunk_size: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def folder_hash(path: Path, suffixes: tuple[str, ...] = (".safetensors", ".json")) -> str:
    """sha256 over the names and hashes of a folder's weight and config files, in sorted order.

    Used for model and adapter folders: it changes when any weight or config changes and
    ignores logs or checkpoints that may sit beside them.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file() and p.suffix in suffixes):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file_hash(file).encode())
    return digest.hexdigest()
