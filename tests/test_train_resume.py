"""Resume: a run killed with SIGKILL after its first checkpoint, resumed with `prefline train resume`,
ends where an uninterrupted run with the same seed ends.

Tolerance: losses within rel 1e-5, adapter weights within atol 1e-6. Both runs take the same batches
in the same order (the Trainer fast-forwards the seeded sampler past the checkpoint's steps) and the
checkpoint restores the adapter, optimizer, scheduler and RNG states, so on CPU with fp32 they agree
to the last bit in practice; the tolerance only leaves room for a different kernel choice between
processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app
from prefline.config import TrainConfig
from prefline.data.ingest import ingest
from prefline.errors import PreflineError
from prefline.train.run import last_checkpoint, resume, train

# 16 pairs, 2 per step: 8 steps are exactly one epoch. A checkpoint every 2 steps, 2 kept.
SETTINGS = {"max_steps": 8, "batch_size": 2, "learning_rate": 1e-2, "max_length": 64, "bf16": False,
            "gradient_checkpointing": False, "save_steps": 2, "save_total_limit": 2}


def _yaml(path: Path) -> Path:
    path.write_text("".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in SETTINGS.items()))
    return path


def _kill_after_first_checkpoint(args: list[str], checkpoint: Path, timeout: float = 300) -> None:
    process = subprocess.Popen([sys.executable, "-m", "prefline", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while not (checkpoint / "trainer_state.json").is_file():  # the last file a checkpoint gets
            if process.poll() is not None:
                pytest.fail(f"training ended before its first checkpoint: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within the timeout")
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()


def test_a_killed_run_resumes_to_the_uninterrupted_result(ledger, tiny_model_dir, tmp_path):
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(16)]), "d", ledger)
    folder = Path(os.environ["PREFLINE_HOME"]) / "adapters" / "killed"
    _kill_after_first_checkpoint(["train", "dpo", "--data", "d", "--name", "killed", "--config", str(_yaml(tmp_path / "t.yaml")),
                                  "--model", str(tiny_model_dir)], folder / "checkpoints" / "checkpoint-2")
    killed = ledger.get_adapter("killed", finished=False)
    assert killed["status"] == "running", "the run finished before it was killed: nothing to resume"
    recorded_before = [s["step"] for s in ledger.train_steps(killed["id"])]
    assert recorded_before[:2] == [1, 2] and len(recorded_before) < 8

    result = CliRunner().invoke(app, ["train", "resume", "killed"])
    assert result.exit_code == 0, result.output
    resumed = ledger.get_adapter("killed")
    uninterrupted = train("dpo", "d", "whole", TrainConfig(**SETTINGS), ledger, model_spec=str(tiny_model_dir), show_progress=False)

    assert resumed["metrics"]["resumed_from_step"] >= 2 and not (folder / "checkpoints").exists()
    losses = {a["name"]: [s["metrics"]["loss"] for s in ledger.train_steps(a["id"])] for a in (resumed, uninterrupted)}
    assert len(losses["killed"]) == 8  # steps after the checkpoint were dropped and recorded again, once
    assert losses["killed"] == pytest.approx(losses["whole"], rel=1e-5)
    for key in ("loss", "rewards/margins", "rewards/accuracies", "logps/chosen"):
        assert resumed["metrics"]["last"][key] == pytest.approx(uninterrupted["metrics"]["last"][key], rel=1e-5, abs=1e-7), key
    got, expected = (load_file(f"{a['path']}/adapter_model.safetensors") for a in (resumed, uninterrupted))
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)


def test_resume_without_a_checkpoint_starts_again(ledger, tiny_model_dir, tmp_path):
    """A run that recorded steps but wrote no checkpoint (save_steps 0) starts again from step 0."""
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(4)]), "d", ledger)
    config = TrainConfig(max_steps=2, batch_size=2, learning_rate=1e-2, max_length=64, bf16=False, gradient_checkpointing=False)
    done = train("dpo", "d", "a", config, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    with pytest.raises(PreflineError, match="only a killed or failed run"):
        resume("a", ledger)
    ledger.update_adapter(done["id"], status="failed")  # as if it had crashed
    again = resume("a", ledger, show_progress=False)
    assert again["status"] == "done" and [s["step"] for s in ledger.train_steps(again["id"])] == [1, 2]
    assert "resumed_from_step" not in again["metrics"] and again["adapter_hash"] == done["adapter_hash"]
    with pytest.raises(PreflineError, match="unknown adapter"):
        resume("ghost", ledger)


def test_last_checkpoint_skips_an_incomplete_one(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert last_checkpoint(tmp_path / "missing") is None
