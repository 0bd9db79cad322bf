"""Surfaces carry training defaults: voice trains against length harder than chat, a config file's
``surfaces`` section adds or overrides them, explicit settings win, and the ledger records the
resolved config."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import pair, write_jsonl
from prefline.cli import app
from prefline.config import TrainConfig, parse
from prefline.data.ingest import ingest
from prefline.errors import PreflineError
from prefline.train.methods import get_method
from prefline.train.run import trl_config
from prefline.train.surfaces import SURFACES, apply_surface, load_train_file

LD = get_method("ld-dpo")


def test_voice_regularizes_length_harder_than_chat(tmp_path):
    chat, applied, notes = apply_surface(TrainConfig(), "chat", LD)
    voice, voice_applied, _ = apply_surface(TrainConfig(), "voice", LD)
    assert chat.ld_alpha == 0.5 and applied == {} and notes == []
    assert voice.ld_alpha == 0.25 < chat.ld_alpha and voice_applied == {"ld_alpha": 0.25}
    assert trl_config(LD, LD.resolve(voice), tmp_path).ld_alpha == 0.25  # what TRL is given
    assert SURFACES["voice"] == {"ld_alpha": 0.25}


def test_explicit_settings_win_and_unread_defaults_are_noted():
    explicit = parse({"ld_alpha": 0.8}, TrainConfig, "train.yaml")
    config, applied, _ = apply_surface(explicit, "voice", LD)
    assert config.ld_alpha == 0.8 and applied == {}
    config, applied, notes = apply_surface(TrainConfig(), "voice", get_method("dpo"))
    assert applied == {} and config.ld_alpha == 0.5  # dpo does not read ld_alpha: nothing applied ...
    assert notes == ["surface 'voice' sets ld_alpha=0.25, which method 'dpo' does not read (read by: ld-dpo); training without it"]
    get_method("dpo").resolve(config)  # ... so dpo's own checks still pass
    assert apply_surface(TrainConfig(), "code", LD)[1] == {}  # a surface with no defaults is a label


def test_a_config_file_section_adds_and_overrides_surfaces(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("learning_rate: 1.0e-3\nsurfaces:\n  voice: {ld_alpha: 0.2}\n  kiosk: {ld_alpha: 0.1, max_steps: 7}\n")
    settings, surfaces = load_train_file(path)
    assert settings == {"learning_rate": 1e-3}  # only what the file sets: the rest stays unset
    config = parse(settings, TrainConfig, "train.yaml")
    assert apply_surface(config, "voice", LD, surfaces)[0].ld_alpha == 0.2
    kiosk, applied, _ = apply_surface(config, "kiosk", LD, surfaces)
    assert (kiosk.ld_alpha, kiosk.max_steps, kiosk.learning_rate) == (0.1, 7, 1e-3) and applied == {"ld_alpha": 0.1, "max_steps": 7}

    path.write_text("surfaces:\n  voice: {ld_alpha: 2.0}\n")
    with pytest.raises(PreflineError, match=r"train.yaml: surfaces.voice: ld_alpha: Input should be less than or equal to 1"):
        load_train_file(path)
    path.write_text("surfaces:\n  voice: {ld_alfa: 0.2}\n")
    with pytest.raises(PreflineError, match="surfaces.voice: ld_alfa: Extra inputs are not permitted"):
        load_train_file(path)
    path.write_text("surfaces: [voice]\n")
    with pytest.raises(PreflineError, match="surfaces: expected a mapping"):
        load_train_file(path)


def test_the_ledger_records_the_resolved_config(ledger, tiny_model_dir, tmp_path):
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(4)]), "d", ledger)
    path = tmp_path / "train.yaml"
    path.write_text("max_steps: 1\nbatch_size: 2\nmax_length: 64\nbf16: false\ngradient_checkpointing: false\n")
    runner = CliRunner()
    common = ["--data", "d", "--config", str(path), "--model", str(tiny_model_dir), "--surface", "voice"]
    result = runner.invoke(app, ["train", "ld-dpo", "--name", "v", *common])
    assert result.exit_code == 0, result.output
    adapter = ledger.get_adapter("v")
    assert adapter["surface"] == "voice" and adapter["config"]["ld_alpha"] == 0.25
    assert adapter["config"]["surface_defaults"] == {"ld_alpha": 0.25} and adapter["config"]["max_steps"] == 1

    result = runner.invoke(app, ["train", "dpo", "--name", "c", *common])  # dpo on voice: noted, not applied
    assert result.exit_code == 0, result.output
    adapter = ledger.get_adapter("c")
    assert "ld_alpha" not in adapter["config"] and "surface_defaults" not in adapter["config"]
    assert adapter["metrics"]["notes"] == ["surface 'voice' sets ld_alpha=0.25, which method 'dpo' does not read (read by: ld-dpo); training without it"]
