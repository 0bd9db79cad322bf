"""Surfaces: the product surface an adapter serves carries training defaults.

Where a response is read aloud (``voice``), every extra sentence costs the listener time, so
voice adapters are trained against length harder than chat ones. A surface's defaults are
``TrainConfig`` fields; they fill in what the user's config leaves unset, so the order is:
method defaults < surface defaults < the user's explicit settings. The resolved config (with the
surface's defaults applied) is what the ledger records, with the applied fields listed under
``surface_defaults``.

Shipped defaults:

- ``chat``: none (the method's defaults; ``ld_alpha`` 0.5 for ld-dpo).
- ``voice``: ``ld_alpha: 0.25``. ld-dpo scales the log-probs of the tokens past the shorter response's
  length by ``ld_alpha``; at 0.25 instead of 0.5, a length difference moves the DPO margin half as much
  again, so length alone earns less reward. Only ld-dpo reads ``ld_alpha``: a method that does not read a
  surface default is trained without it, and ``train`` says so (and records the note), e.g. for ``dpo``
  on ``voice``: train ``ld-dpo`` to get voice's length regularization.

Any other surface name (``code``, ``kiosk``, ...) is a label with no defaults unless a config
file gives it some. A training config file may add or override surfaces in a ``surfaces`` section::

    learning_rate: 5.0e-4
    surfaces:
      voice: {ld_alpha: 0.2}
      kiosk: {ld_alpha: 0.1, max_steps: 200}

A surface's fields are merged over the shipped ones for that surface, field by field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prefline.config import TrainConfig, parse
from prefline.errors import PreflineError
from prefline.train.methods import METHOD_FIELDS, Method

SURFACES: dict[str, dict[str, Any]] = {
    "chat": {},
    "voice": {"ld_alpha": 0.25},
}


def load_train_file(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A training YAML file -> (the TrainConfig fields it sets, its ``surfaces`` section), both validated."""
    from prefline.paths import input_file

    path = input_file(path, "training YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise PreflineError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict):
        raise PreflineError(f"{path}: expected a mapping of training settings, got {type(data).__name__}")
    surfaces = data.pop("surfaces", None) or {}
    if not isinstance(surfaces, dict) or not all(isinstance(v, dict) for v in surfaces.values()):
        raise PreflineError(f"{path}: surfaces: expected a mapping of surface name -> settings, e.g. voice: {{ld_alpha: 0.2}}")
    settings = parse(data, TrainConfig, str(path)).model_dump(include=set(data))
    for name, values in surfaces.items():
        parse({**settings, **values}, TrainConfig, f"{path}: surfaces.{name}")
    return settings, surfaces


def command_settings(path: str | Path | None, overrides: dict[str, Any]) -> tuple[TrainConfig, dict[str, dict[str, Any]]]:
    """The settings a training command runs with: the YAML file's fields (if any) with ``overrides``
    (options the user gave; ``None`` means not given) over them, and the file's ``surfaces`` section.

    Only the fields the file and the options set are set: the rest stay unset, for the surface's defaults.
    """
    base, surfaces = load_train_file(path) if path else ({}, {})
    given = {k: v for k, v in overrides.items() if v is not None}
    return parse({**base, **given}, TrainConfig, str(path or "command line")), surfaces


def surface_defaults(surface: str | None, overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The defaults ``surface`` carries: the shipped ones with the config file's merged over them."""
    if surface is None:
        return {}
    return {**SURFACES.get(surface, {}), **(overrides or {}).get(surface, {})}


def apply_surface(config: TrainConfig, surface: str | None, spec: Method,
                  overrides: dict[str, dict[str, Any]] | None = None) -> tuple[TrainConfig, dict[str, Any], list[str]]:
    """``config`` with the surface's defaults filled in where the user set nothing.

    Returns the config, the defaults applied, and a note for each default the method does not read.
    """
    applied: dict[str, Any] = {}
    notes: list[str] = []
    for field, value in surface_defaults(surface, overrides).items():
        if field in config.model_fields_set:
            continue  # the user's explicit setting wins
        if field in METHOD_FIELDS and field not in spec.uses:
            readers = ", ".join(spec_name for spec_name in _readers(field))
            notes.append(f"surface {surface!r} sets {field}={value!r}, which method {spec.name!r} does not read "
                         f"(read by: {readers}); training without it")
            continue
        applied[field] = value
    if not applied:
        return config, applied, notes
    resolved = parse({**config.model_dump(include=config.model_fields_set), **applied}, TrainConfig, f"surface {surface}")
    return resolved, applied, notes


def _readers(field: str) -> list[str]:
    from prefline.train.methods import METHODS

    return [m.name for m in METHODS.values() if field in m.uses]
