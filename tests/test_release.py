"""Releases per surface: promote behind the gate, forced releases, rollback that confirms recovery,
status and history, and two promotions racing on one surface (processes, SQLite and PostgreSQL).

Runs promoted by id are planted (their per-item scores written directly) on a real suite
folder, so the gate's numbers are known; rollbacks re-evaluate for real on the tiny model.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
import yaml
from typer.testing import CliRunner

from conftest import write_jsonl
from prefline.cli import app
from prefline.errors import PreflineError
from prefline.evals.suite import load_suite, register_suite
from prefline.ledger import Ledger
from prefline.release import history, live_stack, promote, rollback, status

ITEMS = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"Name a prime number larger than {i}."}],
          "slices": {"intent": "factual" if i < 4 else "howto"}} for i in range(8)]
POLICY = {"name": "tight", "rules": [{"metric": "length_tokens", "max_ratio": 1.3}], "slice_keys": ["intent"], "min_items": 2}


@pytest.fixture
def surfaces(tmp_path):
    """A suite folder, a policy and a surfaces file naming them by relative path."""
    (tmp_path / "suite").mkdir()
    write_jsonl(tmp_path / "suite" / "items.jsonl", ITEMS)
    (tmp_path / "suite" / "suite.yaml").write_text(yaml.safe_dump({"name": "mini", "version": 1, "items": "items.jsonl", "scorers": ["length"]}))
    (tmp_path / "tight.yaml").write_text(yaml.safe_dump(POLICY))
    path = tmp_path / "surfaces.yaml"
    path.write_text(yaml.safe_dump({"surfaces": {"chat": {"suite": "suite", "policy": "tight.yaml", "decoding": {"max_new_tokens": 8}}}}))
    return path


def planted_run(ledger, surfaces, lengths: list[float]) -> int:
    """A finished run of a new (planted) adapter on the mini suite next to the surfaces file, whose
    per-item length_tokens are ``lengths``."""
    suite = load_suite(str(surfaces.parent / "suite"))
    register_suite(suite, ledger)
    dataset = ledger.add_dataset(name=f"d{len(ledger.list_datasets())}", version=1, content_hash="h" * 64, path="/p",
                                 n_read=1, n_accepted=1, n_rejected=0, n_duplicates=0)
    adapter_id = ledger.add_adapter(name=f"a{dataset}", method="dpo", status="done", base_model="m", base_model_hash="m" * 64,
                                    dataset_id=dataset, dataset_hash="h" * 64, config={}, seed=0)
    run = ledger.add_run(suite_name=suite.name, suite_hash=suite.hash, model="m", model_hash="m" * 64, backend="hf",
                         decoding={}, seed=0, scorers=["length"], adapter_id=adapter_id)
    ledger.add_generations(run, [{"item_id": it.id, "item_hash": it.hash, "slices": it.slices, "messages": it.chat(), "output": "x",
                                  "input_tokens": 1, "output_tokens": 1, "latency_s": 0.0} for it in suite.items])
    ledger.add_scores(run, [{"item_id": it.id, "metric": "length_tokens", "scorer": "length", "value": v, "evidence": {}}
                            for it, v in zip(suite.items, lengths)])
    ledger.finish_run(run, {"length_tokens": {"overall": {"n": 8, "mean": sum(lengths) / len(lengths), "ci": [0, 0]}}})
    return run


def test_promote_is_gated_and_forced_release_records_its_reason(ledger, surfaces):
    first = planted_run(ledger, surfaces, [10] * 8)
    ok = promote(ledger, "chat", str(first), surfaces=surfaces)
    assert ok.promoted and ok.gate is None and ok.release["seq"] == 1
    assert ok.release["reference_run_id"] == first  # the first release is the surface's reference

    longer = planted_run(ledger, surfaces, [10] * 4 + [20] * 4)  # howto doubles: ratio 2.0 > 1.3
    refused = promote(ledger, "chat", str(longer), surfaces=surfaces)
    assert not refused.promoted and refused.gate.verdict == "fail"
    # every howto item doubled: a fail; overall (4 of 8 items doubled) is too noisy at n = 8 to show ratio > 1.3
    assert {c.slice for c in refused.gate.failures} == {"intent=howto"}
    assert {c.slice for c in refused.gate.inconclusive} == {"overall"}
    assert len(ledger.releases("chat")) == 1  # nothing recorded...
    assert ledger.gate_decisions()[-1]["id"] == refused.gate.decision_id  # ...but the decision is

    with pytest.raises(PreflineError, match="--force needs --reason"):
        promote(ledger, "chat", str(longer), force=True, surfaces=surfaces)
    forced = promote(ledger, "chat", str(longer), force=True, reason="hotfix for a broken tool call", surfaces=surfaces)
    assert forced.promoted and forced.release["forced"] and forced.release["reason"] == "hotfix for a broken tool call"
    assert forced.release["decision_id"] == forced.gate.decision_id and forced.release["reference_run_id"] == first

    within = planted_run(ledger, surfaces, [22] * 8)  # vs the live run (mean 15): ratio 1.47 overall, 2.2 in factual
    assert not promote(ledger, "chat", str(within), surfaces=surfaces).promoted
    fine = planted_run(ledger, surfaces, [12] * 4 + [20] * 4)  # vs live: factual 1.2, howto 1.0, overall 16/15
    passed = promote(ledger, "chat", str(fine), surfaces=surfaces)
    assert passed.promoted and passed.gate.verdict == "pass" and not passed.release["forced"]
    assert [r["seq"] for r in ledger.releases("chat")] == [1, 2, 3]


def test_bad_requests_are_one_line_errors(ledger, surfaces, tmp_path):
    with pytest.raises(PreflineError, match=r"unknown surface 'radio' .*defined: chat"):
        promote(ledger, "radio", "base", surfaces=surfaces)
    with pytest.raises(PreflineError, match="nothing to roll back to on chat: nothing was ever released"):
        rollback(ledger, "chat", surfaces=surfaces)
    other = ledger.add_run(suite_name="x", suite_hash="x" * 64, model="m", model_hash="m" * 64, backend="hf", decoding={},
                           seed=0, scorers=["length"])
    ledger.finish_run(other, {})
    with pytest.raises(PreflineError, match="not on chat's suite mini"):
        promote(ledger, "chat", str(other), surfaces=surfaces)
    run = planted_run(ledger, surfaces, [10] * 8)
    promote(ledger, "chat", str(run), surfaces=surfaces)
    with pytest.raises(PreflineError, match="is already live on chat"):
        promote(ledger, "chat", str(run), surfaces=surfaces)
    with pytest.raises(PreflineError, match=r"only a1 \(release 1\) was ever live"):
        rollback(ledger, "chat", surfaces=surfaces)

    result = CliRunner().invoke(app, ["release", "promote", "--surface", "chat", "--force", "nothing", "--surfaces", str(surfaces)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --force needs --reason TEXT: a forced release records why it skipped the gate"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"surfaces": {"chat": {"suite": "suite", "polcy": "x"}}}))
    result = CliRunner().invoke(app, ["release", "status", "--surfaces", str(bad)])
    assert result.exit_code == 2 and "surfaces.chat.polcy" in result.output and len(result.output.strip().splitlines()) == 1


def test_status_lists_the_shipped_surfaces_with_nothing_live(ledger):
    result = CliRunner().invoke(app, ["release", "status", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["surface"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"chat", "code", "voice"} and all(r["live"] is None for r in rows.values())
    assert (rows["voice"]["suite"], rows["voice"]["policy"]) == ("release", "voice")
    text = CliRunner().invoke(app, ["release", "status"])
    assert text.exit_code == 0 and text.stdout.count("(nothing live)") == 3


def test_live_stack_replays_promotions_rollbacks_and_pins():
    rows = [{"id": 1, "action": "promote"}, {"id": 2, "action": "promote"}, {"id": 3, "action": "pin"},
            {"id": 4, "action": "promote"}, {"id": 5, "action": "rollback"}]
    # 5 rolled 4 back and stands in for 2; rolling back again returns to 1, never to the bad 4
    assert [r["id"] for r in live_stack(rows)] == [1, 5]
    assert [r["id"] for r in live_stack(rows + [{"id": 6, "action": "rollback"}])] == [6]


def test_rollback_confirms_recovery_on_the_tiny_model(ledger, surfaces, tiny_model_dir, tmp_path):
    """Promote the base model, force a planted bad release, roll back: the base is re-evaluated for real
    (its generations come from the cache) and matches the run recorded when it was live."""
    config = yaml.safe_load(surfaces.read_text())
    config["surfaces"]["chat"]["model"] = str(tiny_model_dir)
    surfaces.write_text(yaml.safe_dump(config))
    runner = CliRunner()
    first = runner.invoke(app, ["release", "promote", "base", "--surface", "chat", "--surfaces", str(surfaces), "--json"])
    assert first.exit_code == 0, first.output
    base_run = json.loads(first.stdout)["candidate_run"]
    bad = planted_run(ledger, surfaces, [80] * 8)
    forced = runner.invoke(app, ["release", "promote", str(bad), "--surface", "chat", "--surfaces", str(surfaces),
                                 "--force", "--reason", "try it"])
    assert forced.exit_code == 0, forced.output

    cache_before = len(ledger.cached_generations([g["cache_key"] for g in ledger.generations(base_run)]))
    result = runner.invoke(app, ["release", "rollback", "--surface", "chat", "--surfaces", str(surfaces), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["confirmed"] and out["differences"] == [] and out["restored"]["run_id"] == base_run
    assert out["rolled_back"]["run_id"] == bad
    new_run = out["release"]["run_id"]
    assert new_run != base_run
    assert [g["output"] for g in ledger.generations(new_run)] == [g["output"] for g in ledger.generations(base_run)]
    assert cache_before == len(ITEMS)  # every generation was already cached: nothing regenerated
    assert [g["verdict"] for g in out["gates"]] == ["pass", "pass"]

    live = {r["surface"]: r for r in status(ledger, surfaces)}["chat"]
    assert live["live"] == "base" and live["action"] == "rollback" and live["run_id"] == new_run
    assert live["reference_run_id"] == base_run
    rows = history(ledger, "chat")
    assert [r["action"] for r in rows] == ["promote", "promote", "rollback"]
    assert rows[-1]["outcome"]["confirmed"] is True and rows[1]["forced"] and rows[1]["verdict"] == "fail"
    text = runner.invoke(app, ["release", "history", "--surface", "chat"])
    assert text.exit_code == 0 and "recovery confirmed" in text.stdout and "forced: try it" in text.stdout


def test_rollback_not_confirmed_when_the_restored_adapter_behaves_differently(ledger, surfaces, tiny_model_dir):
    """The serving settings changed after the base was live (max_new_tokens 8 -> 2): the restored base answers
    shorter than when it was recorded, so recovery is not confirmed and the exit code is 1."""
    config = yaml.safe_load(surfaces.read_text())
    config["surfaces"]["chat"]["model"] = str(tiny_model_dir)
    surfaces.write_text(yaml.safe_dump(config))
    assert promote(ledger, "chat", "base", surfaces=surfaces).promoted
    promote(ledger, "chat", str(planted_run(ledger, surfaces, [80] * 8)), force=True, reason="bad", surfaces=surfaces)
    config["surfaces"]["chat"]["decoding"]["max_new_tokens"] = 2
    surfaces.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["release", "rollback", "--surface", "chat", "--surfaces", str(surfaces)])
    assert result.exit_code == 1, result.output
    assert "recovery NOT confirmed" in result.stdout and "length_tokens" in result.stdout
    row = ledger.releases("chat")[-1]
    assert row["action"] == "rollback" and row["adapter_name"] == "base" and row["outcome"]["confirmed"] is False
    assert {d["direction"] for d in row["outcome"]["differences"]} == {"better"}  # shorter than recorded, beyond 1/1.3


# --- racing promotions --------------------------------------------------------------------


def _race(url: str, surfaces: str, run_id: int, barrier, results) -> None:
    """One promoter process: reads the surface, decides, then waits for the other before recording."""
    os.environ["PREFLINE_DB_URL"] = url
    ledger = Ledger(url)
    insert = ledger.add_release

    def add_release_after_both_decided(**values):
        barrier.wait(timeout=60)
        return insert(**values)

    ledger.add_release = add_release_after_both_decided
    try:
        results.put(("won", promote(ledger, "chat", str(run_id), surfaces=surfaces).release["id"]))
    except PreflineError as exc:
        results.put(("lost", str(exc)))


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_promotions_racing_cannot_both_win(db, request, tmp_path, surfaces):
    url = f"sqlite:///{tmp_path / 'race.db'}" if db == "sqlite" else request.getfixturevalue("pg_url")
    ledger = Ledger(url)
    promote(ledger, "chat", str(planted_run(ledger, surfaces, [10] * 8)), surfaces=surfaces)
    a, b = planted_run(ledger, surfaces, [11] * 8), planted_run(ledger, surfaces, [12] * 8)  # each passes against the live run alone
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(url, str(surfaces), run, barrier, results)) for run in (a, b)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert [o[0] for o in outcomes] == ["lost", "won"]
    assert "surface 'chat' changed while this release was decided" in outcomes[0][1]
    rows = ledger.releases("chat")
    assert [r["seq"] for r in rows] == [1, 2] and rows[1]["id"] == outcomes[1][1]


def test_history_round_trip_on_postgres(request, surfaces):
    pytest.importorskip("psycopg2")
    url = request.getfixturevalue("pg_url")
    ledger = Ledger(url)
    first = planted_run(ledger, surfaces, [10] * 8)
    promote(ledger, "chat", str(first), surfaces=surfaces)
    promote(ledger, "chat", str(planted_run(ledger, surfaces, [11] * 8)), surfaces=surfaces)
    rows = history(ledger, "chat")
    assert [(r["seq"], r["action"], r["verdict"]) for r in rows] == [(1, "promote", None), (2, "promote", "pass")]
    assert rows[1]["metrics"] == {"length_tokens": 11.0} and rows[1]["reference_run_id"] == first


test_history_round_trip_on_postgres = pytest.mark.postgres(test_history_round_trip_on_postgres)


def test_pin_moves_the_reference_and_keeps_what_is_live(ledger, surfaces):
    runner = CliRunner()
    result = runner.invoke(app, ["release", "pin", "1", "--surface", "chat"])
    assert result.exit_code == 2 and "nothing was ever released on chat" in result.output
    first = planted_run(ledger, surfaces, [10] * 8)
    promote(ledger, "chat", str(first), surfaces=surfaces)
    other = planted_run(ledger, surfaces, [10.5] * 8)
    result = runner.invoke(app, ["release", "pin", str(other), "--surface", "chat", "--reason", "the team's pinned baseline", "--json"])
    assert result.exit_code == 0, result.output
    pinned = json.loads(result.stdout)
    assert pinned["action"] == "pin" and pinned["reference_run_id"] == other and pinned["run_id"] == first
    live = {r["surface"]: r for r in status(ledger, surfaces)}["chat"]
    assert live["reference_run_id"] == other and live["action"] == "promote" and live["run_id"] == first
    nxt = promote(ledger, "chat", str(planted_run(ledger, surfaces, [11] * 8)), surfaces=surfaces)
    assert nxt.promoted and nxt.release["reference_run_id"] == other and nxt.release["seq"] == 3
    # a rollback skips the pin and returns to the first release's adapter
    assert [r["action"] for r in history(ledger, "chat")] == ["promote", "pin", "promote"]
    assert [r["id"] for r in live_stack(ledger.releases("chat"))] == [1, 3]
