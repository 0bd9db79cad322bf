"""The vllm backend, as far as a machine without vLLM can test it.

What these tests exercise:
- without vLLM installed, `run_eval(..., backend="vllm")`, `prefline eval --backend vllm` and the
  backend's constructor each stop with one line naming the install command, before a run is recorded
  (these two tests skip on a machine where vLLM is installed);
- the backend is registered as ``vllm``;
- ``lora_rank_slot``: an adapter's LoRA rank maps to the smallest ``max_lora_rank`` vLLM accepts,
  and a rank above the largest is a clear error.

What they do not exercise: nothing here imports vLLM, loads a model into it or generates. The engine
arguments (GPU memory share, ``max_model_len``, seed, LoRA slots), serving a full fine-tune's weights,
``LoRARequest``, the sampling parameters, batching with ``on_batch``, token counts, finish reasons
and the generations' agreement with the hf backend are untested in this suite: they need a GPU with
vLLM installed.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from prefline.cli import app
from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.evals.backends import BACKENDS
from prefline.evals.backends._vllm import VLLMBackend, lora_rank_slot
from prefline.evals.run import run_eval
from prefline.evals.suite import load_suite

needs_no_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")


@needs_no_vllm
def test_missing_vllm_is_one_line_with_the_install_command(ledger, tiny_model_dir):
    with pytest.raises(PreflineError) as info:
        run_eval(load_suite("smoke"), ledger, model_spec=str(tiny_model_dir), decoding=DecodingConfig(max_new_tokens=4),
                 backend="vllm", show_progress=False)
    assert str(info.value) == "the vllm backend needs vLLM (GPU machines), which is not installed; install it with: pip install vllm"
    assert ledger.list_runs() == []  # refused before anything was recorded
    with pytest.raises(PreflineError, match="pip install vllm"):
        VLLMBackend(None, DecodingConfig())  # the constructor checks too


@needs_no_vllm
def test_cli_missing_vllm(tiny_model_dir):
    result = CliRunner().invoke(app, ["eval", "--suite", "smoke", "--backend", "vllm", "--model", str(tiny_model_dir)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: the vllm backend needs vLLM (GPU machines), which is not installed; "
                                                  "install it with: pip install vllm"]


def test_registered_and_lora_rank_slots(tmp_path):
    assert BACKENDS["vllm"] is VLLMBackend
    for rank, slot in [(1, 1), (4, 8), (16, 16), (17, 32), (320, 320), (512, 512)]:
        (tmp_path / "adapter_config.json").write_text(json.dumps({"r": rank}))
        assert lora_rank_slot(tmp_path) == slot
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 1024}))
    with pytest.raises(PreflineError, match="above the largest LoRA rank"):
        lora_rank_slot(tmp_path)
