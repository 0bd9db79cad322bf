"""Scale-out: the same run under `accelerate launch` with 2 processes (CPU, gloo), using the shipped
examples/accelerate/ddp.yaml. Both processes train; only the main one registers the adapter, saves it
and records steps, so the ledger holds one adapter with one row per step.

On a machine without GPUs, `accelerate launch --cpu --num_processes 2` starts a single process (its
simple launcher); the multi-process launcher (torchrun) is the MULTI_GPU one, which falls back to the
gloo backend on CPU. That is what ddp.yaml selects.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from conftest import pair, write_jsonl
from prefline.data.ingest import ingest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_one_adapter(ledger, tiny_model_dir, tmp_path):
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(8)]), "d", ledger)
    config = tmp_path / "train.yaml"
    config.write_text("batch_size: 2\nmax_length: 64\nlearning_rate: 1.0e-2\nbf16: false\ngradient_checkpointing: false\n")
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--config_file", str(ROOT / "examples/accelerate/ddp.yaml"), "--num_processes", "2",
               "--main_process_port", str(_free_port()), "-m", "prefline", "train", "dpo", "--data", "d", "--name", "ddp",
               "--config", str(config), "--model", str(tiny_model_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("adapter ddp (id 1, dpo, status done)") == 1  # one process reports

    rows = [a for a in ledger.list_adapters() if a["name"] == "ddp"]
    assert len(rows) == 1 and rows[0]["status"] == "done"
    # 8 pairs, 2 per process per step, 2 processes: 2 steps per epoch (one process would take 4)
    assert [s["step"] for s in ledger.train_steps(rows[0]["id"])] == [1, 2] and rows[0]["metrics"]["steps"] == 2
    weights = load_file(f"{rows[0]['path']}/adapter_model.safetensors")
    assert any(t.abs().sum() > 0 for k, t in weights.items() if "lora_B" in k)
