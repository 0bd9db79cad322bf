"""The eval harness: generation cache, resume after an interruption, replay, export, frozen suites."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from prefline.cli import app
from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.evals import backends
from prefline.evals.run import export_run, replay_run, run_eval
from prefline.evals.suite import freeze_suite, load_suite

DECODE = DecodingConfig(max_new_tokens=6, batch_size=4)


@pytest.fixture
def spy(monkeypatch):
    """Counts how many conversations the hf backend is asked to generate."""
    calls: list[int] = []
    real = backends.HFBackend.generate

    def counting(self, conversations, on_batch=None):
        calls.append(len(conversations))
        return real(self, conversations, on_batch)

    monkeypatch.setattr(backends.HFBackend, "generate", counting)
    return calls


def test_unchanged_rerun_generates_nothing(ledger, tiny_model_dir, spy):
    suite = load_suite("smoke")
    first = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    second = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE.model_copy(update={"batch_size": 8}), show_progress=False)
    assert spy == [32]  # the second run came entirely from the cache
    assert [g["output"] for g in ledger.generations(first)] == [g["output"] for g in ledger.generations(second)]
    # other decoding settings are other generations
    run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE.model_copy(update={"max_new_tokens": 7}), show_progress=False)
    assert spy == [32, 32]


def test_interrupted_run_resumes_from_finished_batches(ledger, tiny_model_dir, monkeypatch):
    suite = load_suite("smoke")
    real = backends.HFBackend.generate
    finished: list[int] = []

    def dies_after_two_batches(self, conversations, on_batch=None):
        def wrapped(positions, gens):
            on_batch(positions, gens)
            finished.extend(positions)
            if len(finished) >= 8:
                raise KeyboardInterrupt  # the process dies here; two batches are already persisted

        return real(self, conversations, wrapped)

    monkeypatch.setattr(backends.HFBackend, "generate", dies_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    stopped = ledger.list_runs()[-1]
    assert (stopped["status"], stopped["error"]) == ("failed", "interrupted (Ctrl-C or SIGTERM)")

    asked: list[int] = []
    monkeypatch.setattr(backends.HFBackend, "generate", lambda self, c, on_batch=None: (asked.append(len(c)), real(self, c, on_batch))[1])
    resumed = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    assert asked == [32 - 8]  # only what the interrupted run had not finished

    # the result equals an uninterrupted run in a fresh ledger
    from prefline.ledger import Ledger

    fresh = Ledger(f"sqlite:///{ledger.url.split('///')[1]}.fresh")
    clean = run_eval(suite, fresh, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    assert [g["output"] for g in ledger.generations(resumed)] == [g["output"] for g in fresh.generations(clean)]


def test_replay_rescores_without_generating(ledger, tiny_model_dir, spy):
    suite = load_suite("smoke")
    source = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, scorers=["length"], show_progress=False)
    assert {s["metric"] for s in ledger.scores(source)} == {"length_tokens", "length_words"}
    replayed = replay_run(source, ledger, scorers=["length", "refusal"])
    assert spy == [32]
    run = ledger.get_run(replayed)
    assert run["replay_of"] == source and run["suite_hash"] == suite.hash
    assert {s["metric"] for s in ledger.scores(replayed)} == {"length_tokens", "length_words", "refusal", "over_refusal", "under_refusal"}
    assert [g["output"] for g in ledger.generations(replayed)] == [g["output"] for g in ledger.generations(source)]

    result = CliRunner().invoke(app, ["eval", "--replay", str(source), "--scorers", "refusal", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["scorers"] == ["refusal"]
    assert spy == [32]


def test_export_is_self_describing(ledger, tiny_model_dir, tmp_path):
    run = run_eval(load_suite("smoke"), ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    doc = export_run(run, ledger)
    assert doc["schema_version"] == 1 and doc["kind"] == "prefline.eval_run"
    assert doc["metrics"]["over_refusal"] == {"scorer": "refusal", "direction": "lower", "layer": "behaviour", "category": "safety", "axis": "safety"}
    assert len(doc["items"]) == 32
    item = doc["items"][0]
    assert {"item_id", "slices", "messages", "output", "input_tokens", "output_tokens", "latency_s", "scores"} <= set(item)
    assert item["scores"]["refusal"]["evidence"]["rule"]

    out = tmp_path / "run.json"
    result = CliRunner().invoke(app, ["runs", "export", str(run), "--out", str(out)])
    assert result.exit_code == 0
    assert json.loads(out.read_text())["run"]["id"] == run


def test_frozen_suite_refuses_changed_files(ledger, tmp_path, tiny_model_dir):
    from importlib import resources

    folder = tmp_path / "smoke"
    shutil.copytree(str(resources.files("prefline") / "resources" / "suites" / "smoke"), folder)
    suite = load_suite(str(folder))
    freeze_suite(suite, ledger)
    freeze_suite(load_suite(str(folder)), ledger)  # unchanged: fine, idempotent

    lines = (folder / "items.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["messages"][0]["content"] += " Please."
    lines[0] = json.dumps(first)
    lines.append(json.dumps({"id": "smoke-new", "messages": [{"role": "user", "content": "hi"}]}))
    (folder / "items.jsonl").write_text("\n".join(lines) + "\n")

    changed = load_suite(str(folder))
    with pytest.raises(PreflineError, match=r"frozen with hash .* \(changed: smoke-001; added: smoke-new\).*raise `version`"):
        run_eval(changed, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    result = CliRunner().invoke(app, ["suite", "show", str(folder)])
    assert result.exit_code == 2 and "changed: smoke-001" in result.output

    (folder / "suite.yaml").write_text((folder / "suite.yaml").read_text().replace("version: 1", "version: 2", 1))
    bumped = load_suite(str(folder))
    assert bumped.version == 2
    freeze_suite(bumped, ledger)  # a new version may be frozen


# Runs `prefline eval` as the CLI does, with one change: once two generations are in the cache, the
# process holds still (as if generating slowly) until the test kills it. So the kill always lands
# mid-run, however fast the machine, and the test never has to skip.
_PAUSE_MID_RUN = """
import os, sys, time
from prefline.ledger import Ledger

store, stored = Ledger.cache_generations, [0]

def cache_then_hold(self, rows):
    store(self, rows)
    stored[0] += len(rows)
    if stored[0] >= 2:
        open(os.environ["PREFLINE_TEST_PAUSED"], "w").close()
        time.sleep(600)

Ledger.cache_generations = cache_then_hold
from prefline.cli import main
sys.argv = ["prefline", *sys.argv[1:]]
main()
"""


def test_killed_eval_process_resumes(tiny_model_dir, prefline_home, tmp_path):
    """kill -9 a real `prefline eval` process mid-run; the next run generates only what was missing."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from prefline.ledger import Ledger

    args = ["eval", "--suite", "smoke", "--model", str(tiny_model_dir), "--batch-size", "1", "--max-new-tokens", "48"]
    paused = tmp_path / "paused"
    env = {**os.environ, "PREFLINE_HOME": str(prefline_home), "PREFLINE_TEST_PAUSED": str(paused)}
    log = tmp_path / "killed.stderr"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", _PAUSE_MID_RUN, *args], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.time() + 240
    while not paused.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if not paused.exists():
        proc.kill()
        pytest.fail(f"the eval never reached its second generation (exit {proc.poll()}): {log.read_text()[-2000:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ledger = Ledger()
    before = _count_cache(ledger)
    assert before == 2  # killed while holding after exactly two (batch size 1)
    assert ledger.list_runs()[-1]["status"] == "running"  # the killed run never finished

    done = subprocess.run([sys.executable, "-m", "prefline", *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _count_cache(ledger) == 32
    finished = ledger.list_runs()[-1]
    assert finished["status"] == "done" and len(ledger.generations(finished["id"])) == 32


def _count_cache(ledger) -> int:
    import sqlalchemy as sa

    with ledger.engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM generation_cache")).scalar()


def test_suite_header_names_its_scorers(ledger, tiny_model_dir, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(load_suite("smoke").path, folder)
    header = folder / "suite.yaml"
    text = "\n".join(line for line in header.read_text().splitlines() if not line.startswith("scorers:"))
    header.write_text(text + "\nscorers: [length, hedging]\n")
    suite = load_suite(str(folder))
    assert suite.scorers == ["length", "hedging"]
    run = ledger.get_run(run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False))
    assert run["scorers"] == ["length", "hedging"] and {"hedged", "length_tokens"} <= set(run["summary"])
    shown = CliRunner().invoke(app, ["runs", "show", str(run["id"])])
    assert shown.exit_code == 0 and "metrics, overall" in shown.output
    assert any("style" in line and "hedged" in line for line in shown.output.splitlines())  # grouped as a style metric
    explicit = ledger.get_run(run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, scorers=["refusal"], show_progress=False))
    assert explicit["scorers"] == ["refusal"]  # the caller's choice wins over the header's

    header.write_text(text + "\nscorers: length\n")
    with pytest.raises(PreflineError, match="scorers: Input should be a valid list"):
        load_suite(str(folder))


def test_several_adapters_on_one_loaded_base(ledger, tiny_model_dir, tmp_path, monkeypatch):
    """One base load for two adapters and the base; each run equals that adapter evaluated on its own."""
    import sqlalchemy as sa

    from conftest import pair, write_jsonl
    from prefline.config import TrainConfig
    from prefline.data.ingest import ingest
    from prefline.evals.backends import _hf
    from prefline.evals.run import run_evals
    from prefline.train.run import train

    ingest(write_jsonl(tmp_path / "pairs.jsonl", [pair(i) for i in range(8)]), "tiny", ledger)
    for name, seed in (("a1", 0), ("a2", 1)):
        config = TrainConfig(max_steps=3, batch_size=2, learning_rate=5e-2, max_length=64, bf16=False, seed=seed)
        train("dpo", "tiny", name, config, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    loads: list[str] = []
    real_load = _hf.load_model
    monkeypatch.setattr(_hf, "load_model", lambda ref: loads.append(ref.path) or real_load(ref))

    suite = load_suite("smoke")
    order = ["a1", None, "a2", "a1"]  # the base alone after an adapter: every adapter is disabled for it
    together = run_evals(suite, ledger, order, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    assert loads == [str(tiny_model_dir)]  # the base model was loaded once for all four runs
    outputs = [[g["output"] for g in ledger.generations(run)] for run in together]
    assert outputs[0] != outputs[2] and outputs[0] == outputs[3]  # the adapters differ; the repeat came from the cache

    with ledger.engine.begin() as connection:  # forget every generation: each run below generates again, alone
        connection.execute(sa.delete(ledger.t["generation_cache"]))
    for adapter, shared in zip(order[:3], outputs):
        alone = run_eval(suite, ledger, model_spec=str(tiny_model_dir), adapter=adapter, decoding=DECODE, show_progress=False)
        assert [g["output"] for g in ledger.generations(alone)] == shared, adapter
