"""Known traps of preference training, read from the step metrics while the run goes.

Each check is a pure function of the logged steps (``Trainer.state.log_history``: dicts with
``step``, ``loss`` and the trainer's metrics) and the run's planned number of steps. It returns a
:class:`Trap`, with a one-line explanation, or None. ``StepRecorder`` runs them after every logged
step, prints each new trap once and stores them with the adapter (``metrics["warnings"]``).

The traps, and the metric each reads:

- ``chosen-logps-falling`` (``rewards/chosen``, ``rewards/margins``): the chosen responses' log-probs
  fall while the margin grows. ``rewards/chosen`` is beta times the chosen log-prob minus the
  reference's, averaged over the batch, so it tracks the chosen log-prob's change on each batch's own
  pairs, not the raw log-prob that moves with every batch's response lengths. Compared between the
  first and last quarter of the logged steps (at least 4 logged): fires when the margin grew and the
  chosen reward fell by at least ``DISPLACEMENT_SHARE`` of that growth.
- ``accuracy-saturated-early`` (``rewards/accuracies``, or ``accuracy`` for reward models): every
  logged step up to ``EARLY_SHARE`` of the run (at least step 2) has accuracy 1.0. Step 1 is left out
  when it is the first logged step: LoRA starts at zero, so the policy is the reference and accuracy
  is 0 there by construction.
- ``loss-near-zero`` (``loss``): the mean of the last ``LAST_LOSSES`` logged losses is below
  ``NEAR_ZERO_LOSS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

DISPLACEMENT_SHARE = 0.25  # chosen fall / margin growth that counts as displacement, not noise
EARLY_SHARE = 0.10  # "early": the first 10% of the planned steps
NEAR_ZERO_LOSS = 0.01  # DPO's loss starts at log 2 = 0.69; 0.01 means beta * margin > 4.6 on every pair
LAST_LOSSES = 3


@dataclass(frozen=True)
class Trap:
    code: str
    step: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _steps(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in history if "loss" in entry and "step" in entry]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def chosen_logps_falling(history: list[dict[str, Any]], max_steps: int) -> Trap | None:  # noqa: ARG001
    steps = [s for s in _steps(history) if "rewards/chosen" in s and "rewards/margins" in s]
    if len(steps) < 4:
        return None
    k = max(1, len(steps) // 4)
    first, last = steps[:k], steps[-k:]
    chosen_change = _mean([s["rewards/chosen"] for s in last]) - _mean([s["rewards/chosen"] for s in first])
    margin_change = _mean([s["rewards/margins"] for s in last]) - _mean([s["rewards/margins"] for s in first])
    if margin_change > 0 and chosen_change < 0 and -chosen_change >= DISPLACEMENT_SHARE * margin_change:
        return Trap("chosen-logps-falling", last[-1]["step"],
                    f"chosen log-probs are falling while margins grow (chosen reward {chosen_change:+.3f}, margin "
                    f"{margin_change:+.3f} since the start): the model pushes the preferred answers down too, only less "
                    "than the rejected ones; raise beta, add an SFT term or train fewer steps")
    return None


def accuracy_saturated_early(history: list[dict[str, Any]], max_steps: int) -> Trap | None:
    steps = _steps(history)
    key = "rewards/accuracies" if any("rewards/accuracies" in s for s in steps) else "accuracy"
    steps = [s for s in steps if key in s]
    if steps and steps[0]["step"] == 1:
        steps = steps[1:]
    early = max(2, math.ceil(EARLY_SHARE * max_steps)) if max_steps > 0 else 2
    window = [s for s in steps if s["step"] <= early]
    window_complete = any(s["step"] >= early for s in steps)
    if window and window_complete and all(s[key] >= 0.999 for s in window):
        return Trap("accuracy-saturated-early", window[-1]["step"],
                    f"reward accuracy is 1.0 already by step {window[-1]['step']} of {max_steps}: the pairs are easy to "
                    "tell apart, so the run may learn only what separates them (often length or refusal style); add harder pairs")
    return None


def loss_near_zero(history: list[dict[str, Any]], max_steps: int) -> Trap | None:  # noqa: ARG001
    steps = _steps(history)
    if len(steps) < LAST_LOSSES:
        return None
    last = steps[-LAST_LOSSES:]
    loss = _mean([s["loss"] for s in last])
    if loss < NEAR_ZERO_LOSS:
        return Trap("loss-near-zero", last[-1]["step"],
                    f"loss is near zero ({loss:.2g} over the last {LAST_LOSSES} logged steps): every pair is already "
                    "separated, so further steps only stretch margins away from the reference; stop earlier, add data or raise beta")
    return None


CHECKS: tuple[Callable[[list[dict[str, Any]], int], Trap | None], ...] = (
    chosen_logps_falling, accuracy_saturated_early, loss_near_zero,
)


def find_traps(history: list[dict[str, Any]], max_steps: int) -> list[Trap]:
    """Every trap the logged steps show so far, in the order of ``CHECKS``."""
    return [trap for check in CHECKS if (trap := check(history, max_steps)) is not None]
