"""The method table: one entry per training method, mapping its name to TRL.

Adding a method is adding an entry: which TRL trainer and config class run it, what
data it needs, whether it keeps a reference model, and which TRL arguments encode its
loss. prefline's own ``TrainConfig`` holds the shared hyper-parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefline.config import TrainConfig
from prefline.errors import PreflineError


@dataclass(frozen=True)
class Method:
    name: str
    trainer: str  # class name in ``trl``
    config: str  # its config class in ``trl``
    data: str  # "pairs": prompt + chosen + rejected
    reference: bool  # needs a reference model (with LoRA: the base with the adapter disabled)
    paper: str
    summary: str
    trl_args: Callable[[TrainConfig], dict[str, Any]]


METHODS: dict[str, Method] = {
    "dpo": Method(
        name="dpo",
        trainer="DPOTrainer",
        config="DPOConfig",
        data="pairs",
        reference=True,
        paper="Rafailov et al. 2023, Direct Preference Optimization (arXiv:2305.18290)",
        summary="Sigmoid loss on the beta-scaled log-ratio margin between chosen and rejected, relative to the reference.",
        trl_args=lambda c: {"loss_type": ["sigmoid"], "beta": c.beta},
    ),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise PreflineError(f"unknown training method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]
