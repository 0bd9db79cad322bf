"""benchmarks/validity.py computes its figures on files written here: IFEval agreement and
prompt-level accuracy by hand, and the length-controlled figures against a made-up leaderboard."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
BENCH = ROOT / "benchmarks" / "validity.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("validity", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


IFEVAL = [
    # key, instruction ids, kwargs, response, official strict, official loose
    (2, ["punctuation:no_comma"], [{}], "No commas here.", [True], [True]),
    (3, ["punctuation:no_comma", "startend:quotation"], [{}, {"unused": None}], 'Sure:\n"Wrapped, though."', [False, False], [True, True]),
    (4, ["length_constraints:number_words"], [{"num_words": 3, "relation": "less than"}], "Two words", [False], [False]),  # official said no: disagree
]


def _ifeval_rows():
    return [{"key": k, "prompt": "p", "instruction_id_list": ids, "kwargs": kw, "response": r, "official_strict": s, "official_loose": lo}
            for k, ids, kw, r, s, lo in IFEVAL]


def test_ifeval_figures_by_hand(bench):
    f = bench.ifeval_figures(_ifeval_rows())
    assert (f["prompts"], f["instructions"]) == (3, 4)
    # our verdicts: no_comma T | no_comma F (loose T: without its last line, "Sure:" has no comma),
    # quotation F (loose T: without the first line) | number_words T: one strict and one loose disagreement
    assert f["agreement_strict"] == pytest.approx(3 / 4) and f["agreement_loose"] == pytest.approx(3 / 4)
    assert f["prompt_strict"] == pytest.approx(2 / 3) and f["official_prompt_strict"] == pytest.approx(1 / 3)
    assert f["prompt_loose"] == pytest.approx(3 / 3) and f["official_prompt_loose"] == pytest.approx(2 / 3)
    assert f["disagreeing_types"] == {"length_constraints:number_words": [1, 0, 0]}


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _alpaca(folder: Path) -> None:
    rng = np.random.default_rng(0)
    prompts = [f"question {i}" for i in range(120)]
    _write(folder / "alpaca_eval_baseline.jsonl", [{"instruction": p, "output": "b" * 400} for p in prompts])
    quality = {"good": 1.0, "fair": 0.0, "poor": -1.5, "poor_verbose": -1.5}
    lengths = {"good": 300, "fair": 350, "poor": 150, "poor_verbose": 260}
    rows = []
    for model, theta in quality.items():
        for p in prompts:
            n = max(10, int(rng.normal(lengths[model], 80)))
            x = np.tanh((n - 400) / 100)
            rows.append({"model": model, "instruction": p, "output": "a" * n,
                         "preference": float(rng.random() < 1 / (1 + np.exp(-(theta + 1.0 * x))))})
    _write(folder / "alpaca_eval_dev.jsonl", rows)
    _write(folder / "alpaca_eval_dev_leaderboard.jsonl", [{"model": m, "lc_win_rate": 100 / (1 + np.exp(-t)), "win_rate": 0, "avg_length": 0}
                                                          for m, t in quality.items()])


def test_lc_figures_on_made_up_annotations(bench, tmp_path):
    _alpaca(tmp_path)
    models, board, wins, diffs, ratio = bench.alpaca_matrices(tmp_path)
    assert models == ["fair", "good", "poor", "poor_verbose"] and wins.shape == (4, 120)
    assert ratio[models.index("poor")] == pytest.approx(150 / 400, abs=0.05)
    f = bench.lc_figures(models, board, wins, diffs, ratio, np.arange(120))
    from scipy.stats import spearmanr

    assert f["spearman"] == pytest.approx(spearmanr(f["lc"], f["reference"]).statistic)
    assert f["spearman"] > 0.9  # good > fair > the two poor ones, which are equally good
    assert f["verbose_gap"][0][:2] == ("poor_verbose", "poor")
    assert f["verbose_gap"][0][2] == pytest.approx(f["lc"][3] - f["lc"][2])
    assert "poor" in f["far_models"] and "fair" not in f["far_models"]
    # the figure is the largest gap to the reference among the far models, recomputed here
    gaps = [abs(f["lc"][models.index(m)] - f["reference"][models.index(m)]) for m in f["far_models"]]
    assert f["far_max_move"] == pytest.approx(max(gaps))


def test_the_script_runs_on_a_folder(tmp_path):
    _alpaca(tmp_path)
    _write(tmp_path / "ifeval_dev.jsonl", _ifeval_rows())
    result = subprocess.run([sys.executable, str(BENCH), "--data", str(tmp_path), "--only", "ifeval"], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "odd keys (held out)" in result.stdout and "disagrees: length_constraints:number_words" in result.stdout
    missing = subprocess.run([sys.executable, str(BENCH), "--data", str(tmp_path / "nope")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
