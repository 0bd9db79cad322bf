"""Trap warnings: each check fires on a synthetic log history built to show it, stays quiet on a
healthy one, and a real run stores what it found with the adapter."""

from __future__ import annotations

import pytest

from conftest import pair, write_jsonl
from prefline.config import TrainConfig
from prefline.data.ingest import ingest
from prefline.train.run import train
from prefline.train.traps import accuracy_saturated_early, chosen_logps_falling, find_traps, loss_near_zero


def step(n: int, loss: float = 0.5, acc: float = 0.6, chosen: float = 0.0, margin: float = 0.1) -> dict:
    return {"step": n, "loss": loss, "rewards/accuracies": acc, "rewards/chosen": chosen, "rewards/margins": margin,
            "rewards/rejected": chosen - margin, "learning_rate": 1e-4}


def healthy(n: int = 40) -> list[dict]:
    """Loss falls from log 2 towards 0.3, accuracy climbs from 0 to 0.8, chosen reward rises a little."""
    return [step(i, loss=0.69 - 0.01 * i, acc=min(0.8, 0.02 * i), chosen=0.002 * i, margin=0.02 * i) for i in range(1, n + 1)]


def test_a_healthy_run_shows_no_trap():
    assert find_traps(healthy(), max_steps=40) == []


def test_chosen_logps_falling_while_margins_grow():
    """Chosen reward falls 0.0 -> -0.8 while the margin grows 0.1 -> 1.1 (first vs last quarter of 8 steps:
    chosen -0.05 -> -0.75, margin 0.15 -> 1.05: the chosen fall 0.7 is over a quarter of the margin gain 0.9)."""
    history = [step(i, chosen=-0.1 * (i - 1), margin=0.1 + 0.1 * i) for i in range(1, 9)]
    trap = chosen_logps_falling(history, max_steps=8)
    assert trap is not None and trap.code == "chosen-logps-falling" and trap.step == 8
    assert "chosen log-probs are falling while margins grow" in trap.message and "\n" not in trap.message
    # both fall, margin shrinks: not this trap; chosen falls only a little against the margin gain: noise
    assert chosen_logps_falling([step(i, chosen=-0.1 * i, margin=1.0 - 0.1 * i) for i in range(1, 9)], 8) is None
    assert chosen_logps_falling([step(i, chosen=-0.01 * i, margin=0.2 * i) for i in range(1, 9)], 8) is None
    assert chosen_logps_falling(history[:3], 8) is None  # too few steps to tell


def test_accuracy_at_one_early():
    """100 planned steps: "early" is up to step 10. Step 1 (policy = reference, accuracy 0) is left out."""
    saturated = [step(1, acc=0.0)] + [step(i, acc=1.0) for i in range(2, 12)]
    trap = accuracy_saturated_early(saturated, max_steps=100)
    assert trap is not None and trap.code == "accuracy-saturated-early" and trap.step == 10
    assert accuracy_saturated_early(saturated[:5], max_steps=100) is None  # window not complete yet: wait
    dip = [step(1, acc=0.0)] + [step(i, acc=1.0 if i != 6 else 0.5) for i in range(2, 12)]
    assert accuracy_saturated_early(dip, max_steps=100) is None
    late = [step(i, acc=0.5) for i in range(1, 11)] + [step(i, acc=1.0) for i in range(11, 40)]
    assert accuracy_saturated_early(late, max_steps=100) is None  # 1.0 only after the first 10%: fine
    # reward models log "accuracy" instead of "rewards/accuracies"
    rm = [{"step": i, "loss": 0.3, "accuracy": 1.0} for i in range(1, 4)]
    assert accuracy_saturated_early(rm, max_steps=10).code == "accuracy-saturated-early"


def test_loss_near_zero():
    """The mean of the last 3 logged losses: (0.008 + 0.005 + 0.002) / 3 = 0.005 < 0.01."""
    history = healthy(10) + [step(11, loss=0.008), step(12, loss=0.005), step(13, loss=0.002)]
    trap = loss_near_zero(history, max_steps=13)
    assert trap is not None and trap.code == "loss-near-zero" and trap.step == 13 and "0.005" in trap.message
    assert loss_near_zero(healthy(10) + [step(11, loss=0.001), step(12, loss=0.05), step(13, loss=0.001)], 13) is None
    assert [t.code for t in find_traps(history, 13)] == ["loss-near-zero"]


def test_a_run_stores_its_warnings(ledger, tiny_model_dir, tmp_path, capsys):
    """At learning rate 0.05 the tiny model separates 8 easy pairs at once: accuracy 1.0 by step 2 of 6
    (the early window is at least 2 steps) and the loss near zero from step 4 (mean of steps 2-4);
    both are printed while training and stored with the adapter."""
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(8)]), "easy", ledger)
    config = TrainConfig(max_steps=6, batch_size=4, learning_rate=5e-2, max_length=64, bf16=False, gradient_checkpointing=False)
    adapter = train("dpo", "easy", "a", config, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    codes = [w["code"] for w in adapter["metrics"]["warnings"]]
    assert "accuracy-saturated-early" in codes and "loss-near-zero" in codes
    err = capsys.readouterr().err
    assert "warning: step 2: reward accuracy is 1.0 already by step 2 of 6" in " ".join(err.split())
    for w in adapter["metrics"]["warnings"]:
        assert set(w) == {"code", "step", "message"} and w["step"] >= 1


@pytest.mark.parametrize("codes", [["accuracy-saturated-early"]])
def test_warnings_show_in_adapters_show(codes, ledger, tmp_path):
    from typer.testing import CliRunner

    from prefline.cli import app

    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(0)]), "d", ledger)
    adapter_id = ledger.add_adapter(name="w", method="dpo", status="done", base_model="m", base_model_hash="b" * 64,
                                    dataset_id=1, dataset_hash="h" * 64, config={"method": "dpo"}, seed=0,
                                    metrics={"steps": 3, "warnings": [{"code": c, "step": 2, "message": "the explanation"} for c in codes]})
    assert adapter_id
    result = CliRunner().invoke(app, ["adapters", "show", "w"])
    assert result.exit_code == 0, result.output
    assert "warning (step 2, accuracy-saturated-early): the explanation" in result.output
