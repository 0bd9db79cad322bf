"""Interrupts at points of ingest, train and eval, in a real `prefline` process.

SIGTERM (and Ctrl-C) stop a command the same way: it cleans up, prints one line and exits 130.
SIGKILL gives it no chance: the next command that opens the home (an ingest, `prefline doctor`)
finds and reports or removes what it left. Either way the ledger and the files agree afterwards,
and running the same command again succeeds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import pair, write_jsonl

pytestmark = pytest.mark.slow


def _start(args: list[str], new_session: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "prefline", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=new_session)


def _wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the command ended before {what}: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def _stopped_cleanly(proc: subprocess.Popen) -> str:
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, stdout, stderr)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(("Loading", "generating", "training"))]
    assert lines and lines[-1].startswith("error: interrupted"), stderr
    return stderr


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefline", *map(str, args)], capture_output=True, text=True, timeout=600)


def _doctor() -> dict:
    out = _cli("doctor", "--json")
    return json.loads(out.stdout)


def _count(home: Path, table: str):
    """A function counting the rows of a ledger table (0 while the ledger does not exist yet)."""
    engine = sa.create_engine(f"sqlite:///{home / 'ledger.db'}")

    def count() -> int:
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar()
        except sa.exc.OperationalError:
            return 0

    return count


EVAL = ["eval", "--suite", "smoke", "--max-new-tokens", "48", "--batch-size", "2", "--scorers", "length", "--model"]


def _partials(home: Path) -> list[Path]:
    return list((home / "datasets").glob("*/.ingest-*.partial"))


def _big_file(path: Path, megabytes: int) -> Path:
    """Pairs with long responses: enough bytes that ingest takes a while (and, over 32 MB, uses worker processes)."""
    filler = "word " * 400
    rows, size, i = [], 0, 0
    with open(path, "w", encoding="utf-8") as handle:
        while size < megabytes << 20:
            line = json.dumps(pair(i, chosen=[{"role": "assistant", "content": f"{filler} {i}"}])) + "\n"
            handle.write(line)
            size += len(line)
            i += 1
    return path


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c-to-the-group"])
def test_an_interrupted_ingest_leaves_nothing_and_runs_again(tmp_path, prefline_home, how):
    big = _big_file(tmp_path / "big.jsonl", 34)  # over PARALLEL_BYTES: worker processes validate the chunks
    proc = _start(["data", "ingest", big, "--name", "big"], new_session=True)
    _wait_for(lambda: any((p / "pairs.parquet").exists() and (p / "pairs.parquet").stat().st_size > 0 for p in _partials(prefline_home)),
              "the first chunk was written", proc)
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the group
    _stopped_cleanly(proc)
    assert _partials(prefline_home) == []
    assert not (prefline_home / "datasets" / "big" / "v1").exists()
    assert _doctor() == {"ok": True, "findings": []}
    small = write_jsonl(tmp_path / "small.jsonl", [pair(i) for i in range(5)])
    again = _cli("data", "ingest", small, "--name", "big")
    assert again.returncode == 0, again.stderr
    assert "big@1" in again.stdout


def test_a_killed_ingest_is_found_by_doctor_and_removed_by_the_next_ingest(tmp_path, prefline_home):
    big = _big_file(tmp_path / "big.jsonl", 8)
    proc = _start(["data", "ingest", big, "--name", "big"])
    _wait_for(lambda: bool(_partials(prefline_home)), "the temporary folder exists", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    (left,) = _partials(prefline_home)
    report = _doctor()
    assert not report["ok"] and [f["kind"] for f in report["findings"]] == ["stale_partial"]
    assert report["findings"][0]["path"] == str(left)
    assert _cli("doctor").returncode == 1
    small = write_jsonl(tmp_path / "small.jsonl", [pair(i) for i in range(5)])
    again = _cli("data", "ingest", small, "--name", "big")
    assert again.returncode == 0, again.stderr
    assert f"removed {left}" in again.stderr  # reported, once, by the command that removed it
    assert _partials(prefline_home) == [] and _doctor()["ok"]


def test_doctor_fix_removes_only_dead_partials_and_lists_unlisted_versions(tmp_path, prefline_home):
    from prefline.data.ingest import ingest
    from prefline.ledger import Ledger

    ledger = Ledger()
    ingest(write_jsonl(tmp_path / "a.jsonl", [pair(i) for i in range(3)]), "d", ledger)
    dead = prefline_home / "datasets" / "d" / ".ingest-999999999-x.partial"
    dead.mkdir()
    stray = prefline_home / "datasets" / "d" / "v7"
    stray.mkdir()
    report = _doctor()
    assert sorted(f["kind"] for f in report["findings"]) == ["stale_partial", "unlisted_version"]
    fixed = json.loads(_cli("doctor", "--fix", "--json").stdout)
    assert [f["fixed"] for f in fixed["findings"] if f["kind"] == "stale_partial"] == [True]
    assert not dead.exists() and stray.exists()  # a version folder is data: reported, never deleted


def test_an_interrupted_eval_is_marked_failed_and_resumes(tmp_path, prefline_home, tiny_model_dir):
    args = [*EVAL, tiny_model_dir]
    proc = _start(args)
    cached = _count(prefline_home, "generation_cache")
    _wait_for(lambda: cached() >= 2, "a batch was generated", proc)
    proc.send_signal(signal.SIGTERM)
    _stopped_cleanly(proc)
    from prefline.ledger import Ledger

    (run,) = Ledger().list_runs()
    assert (run["status"], run["error"]) == ("failed", "interrupted (Ctrl-C or SIGTERM)")
    listed = _cli("runs", "list")
    assert "failed" in listed.stdout
    done_before = cached()
    again = _cli(*args, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "done"
    assert cached() == 32 and done_before >= 2  # the re-run generated only what was missing


def test_a_killed_eval_stays_running_and_doctor_says_so(tmp_path, prefline_home, tiny_model_dir):
    args = [*EVAL, tiny_model_dir]
    proc = _start(args)
    cached = _count(prefline_home, "generation_cache")
    _wait_for(lambda: cached() >= 2, "a batch was generated", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    report = _doctor()
    assert report["ok"] and any(f["kind"] == "running" and "eval run 1" in f["detail"] for f in report["findings"])
    assert _cli(*args).returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_training_run_can_be_resumed(tmp_path, prefline_home, tiny_model_dir, sig):
    data = write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(40)])
    assert _cli("data", "ingest", data, "--name", "p").returncode == 0
    config = tmp_path / "train.yaml"
    config.write_text("max_steps: 20\nbatch_size: 2\nsave_steps: 2\nbf16: false\n")
    proc = _start(["train", "dpo", "--data", "p", "--name", "a", "--model", tiny_model_dir, "--config", config])
    steps = _count(prefline_home, "train_steps")
    _wait_for(lambda: steps() >= 3, "a few training steps", proc)
    proc.send_signal(sig)
    if sig == signal.SIGTERM:
        _stopped_cleanly(proc)
    else:
        proc.communicate(timeout=60)
    from prefline.ledger import Ledger

    (adapter,) = Ledger().list_adapters()
    assert adapter["status"] == ("failed" if sig == signal.SIGTERM else "running")
    resumed = _cli("train", "resume", "a", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "done"
