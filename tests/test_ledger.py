"""The ledger: migrations, the final schema, and the queries the stages rely on,
on SQLite and on a real PostgreSQL server."""

from __future__ import annotations


import pytest
import sqlalchemy as sa

from prefline.errors import PreflineError
from prefline.ledger import MIGRATIONS, SUMMARY_FORMAT, Ledger, LineageRow, ProbeRow, migrate

# The schema every stage relies on. A migration that changes it must change this too.
EXPECTED_COLUMNS = {
    "schema_migrations": {"name", "applied_at"},
    "datasets": {"id", "name", "version", "content_hash", "path", "rejects_path", "source_file", "source_hash",
                 "n_read", "n_accepted", "n_rejected", "n_duplicates", "meta", "created_at", "n_excluded", "n_pairs"},
    "adapters": {"id", "name", "method", "status", "base_model", "base_model_hash", "dataset_id", "dataset_hash",
                 "config", "seed", "surface", "path", "adapter_hash", "metrics", "versions", "created_at", "finished_at"},
    "train_steps": {"adapter_id", "step", "metrics", "created_at"},
    "train_probes": {"adapter_id", "step", "metrics", "outputs", "created_at"},
    "eval_runs": {"id", "status", "suite_name", "suite_hash", "model", "model_hash", "adapter_id", "adapter_hash",
                  "backend", "decoding", "seed", "scorers", "versions", "summary", "created_at", "finished_at", "replay_of", "error"},
    "generations": {"run_id", "item_id", "item_hash", "slices", "messages", "output", "input_tokens",
                    "output_tokens", "latency_s", "finish_reason", "cache_key", "ttft_s"},
    "suites": {"hash", "name", "version", "items", "path", "frozen", "created_at"},
    "generation_cache": {"key", "output", "input_tokens", "output_tokens", "latency_s", "finish_reason", "created_at", "ttft_s"},
    "scores": {"run_id", "item_id", "metric", "scorer", "value", "evidence"},
    "preference_evals": {"id", "kind", "dataset_id", "adapter_id", "baseline_run_id", "candidate_run_id", "judge",
                         "summary", "items", "created_at"},
    "gate_decisions": {"id", "baseline_run_id", "candidate_run_id", "policy", "verdict", "results", "created_at"},
    "dataset_lineage": {"id", "dataset_id", "parent_id", "relation", "params", "diff", "changed_share", "major_change",
                        "is_primary", "created_at"},
    "releases": {"id", "surface", "seq", "action", "adapter_id", "adapter_name", "run_id", "decision_id", "reference_run_id",
                 "suite_name", "suite_hash", "policy", "forced", "reason", "actor", "outcome", "created_at"},
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_url")


def test_final_schema_matches(db_url):
    ledger = Ledger(db_url)
    inspector = sa.inspect(ledger.engine)
    assert set(inspector.get_table_names()) == set(EXPECTED_COLUMNS)
    for table, columns in EXPECTED_COLUMNS.items():
        assert {c["name"] for c in inspector.get_columns(table)} == columns, table


def test_migrations_are_recorded_and_run_once(db_url):
    ledger = Ledger(db_url)
    with ledger.engine.connect() as conn:
        applied = [r[0] for r in conn.execute(sa.text("SELECT name FROM schema_migrations ORDER BY name"))]
    assert applied == [name for name, _ in MIGRATIONS]
    assert migrate(ledger.engine) == []  # nothing left to apply
    Ledger(db_url)  # reopening is safe


def _dataset(ledger, name="d", version=1):
    return ledger.add_dataset(name=name, version=version, content_hash="h" * 64, path="/p", n_read=3, n_accepted=2,
                              n_rejected=1, n_duplicates=0, meta={"slices": {"intent": {"coding": 2}}})


def test_lineage_round_trip(db_url):
    ledger = Ledger(db_url)
    d1 = _dataset(ledger)
    assert ledger.next_dataset_version("d") == 2
    _dataset(ledger, version=2)
    assert ledger.get_dataset("d")["version"] == 2
    assert ledger.get_dataset("d@1")["id"] == d1
    assert ledger.get_dataset("d@1")["meta"] == {"slices": {"intent": {"coding": 2}}}

    a = ledger.add_adapter(name="a", method="dpo", status="running", base_model="m", base_model_hash="b" * 64,
                           dataset_id=d1, dataset_hash="h" * 64, config={"beta": 0.1}, seed=0)
    ledger.add_train_step(a, 1, {"loss": 0.69})
    ledger.add_train_step(a, 2, {"loss": 0.5})
    with pytest.raises(PreflineError, match="did not finish"):
        ledger.get_adapter("a")
    ledger.update_adapter(a, status="done", adapter_hash="c" * 64)
    assert ledger.get_adapter("a")["config"] == {"beta": 0.1}
    assert [s["metrics"]["loss"] for s in ledger.train_steps(a)] == [0.69, 0.5]

    run = ledger.add_run(suite_name="s", suite_hash="s" * 64, model="m", model_hash="b" * 64, adapter_id=a,
                         backend="hf", decoding={"max_new_tokens": 8}, seed=0, scorers=["length"])
    ledger.add_generations(run, [{"item_id": "i1", "item_hash": "x", "slices": {"risk": "none"}, "messages": [],
                                  "output": "héllo", "input_tokens": 3, "output_tokens": 2, "latency_s": 0.1}])
    ledger.add_scores(run, [{"item_id": "i1", "metric": "length_words", "scorer": "length", "value": 1.0, "evidence": {}},
                            {"item_id": "i1", "metric": "over_refusal", "scorer": "refusal", "value": None, "evidence": {"rule": "x"}}])
    ledger.finish_run(run, {"length_words": {}})
    assert ledger.get_run(run)["status"] == "done"
    assert ledger.generations(run)[0]["output"] == "héllo"
    assert [s["value"] for s in ledger.scores(run)] == [1.0, None]


def test_typed_rows_for_probes_and_lineage(db_url):
    ledger = Ledger(db_url)
    d1, d2 = _dataset(ledger), _dataset(ledger, version=2)
    assert ledger.previous_dataset("d", 2)["id"] == d1 and ledger.previous_dataset("d", 1) is None
    assert ledger.dataset_parents(d2) == []
    ledger.add_lineage(dataset_id=d2, parent_id=d1, relation="refresh", params=None, diff={"added": 1}, changed_share=0.5,
                       major_change=True, is_primary=True)
    (link,) = ledger.dataset_parents(d2)
    assert isinstance(link, LineageRow)
    assert (link.parent_name, link.parent_version, link.relation, link.diff, link.changed_share, link.major_change, link.is_primary) == \
        ("d", 1, "refresh", {"added": 1}, 0.5, True, True)

    a = ledger.add_adapter(name="a", method="dpo", status="running", base_model="m", base_model_hash="b" * 64,
                           dataset_id=d1, dataset_hash="h" * 64, config={}, seed=0)
    for step in (0, 2, 4):
        ledger.add_train_step(a, step, {"loss": 1.0 / (step + 1)})
        ledger.add_probe(a, step, {"length_tokens": float(step)}, [{"item": "x", "output": "y" * step}])
    taken = ledger.probes(a)
    assert all(isinstance(p, ProbeRow) for p in taken) and [p.step for p in taken] == [0, 2, 4]
    assert taken[1].metrics == {"length_tokens": 2.0} and taken[2].outputs == [{"item": "x", "output": "yyyy"}]
    ledger.forget_steps_after(a, 2)  # a resumed run records the later steps again
    assert [p.step for p in ledger.probes(a)] == [0, 2] and [s["step"] for s in ledger.train_steps(a)] == [0, 2]


def test_run_summary_is_stored_with_its_format_version(db_url):
    ledger = Ledger(db_url)
    run = ledger.add_run(suite_name="s", suite_hash="s" * 64, model="m", model_hash="b" * 64, backend="hf",
                         decoding={}, seed=0, scorers=["length"])
    metrics = {"length_words": {"overall": {"n": 2, "mean": 3.0, "ci": [2.0, 4.0]}}}
    ledger.finish_run(run, metrics)
    with sa.create_engine(db_url).connect() as conn:
        stored = conn.execute(sa.text("SELECT summary FROM eval_runs WHERE id = :id"), {"id": run}).scalar_one()
    stored = stored if isinstance(stored, dict) else __import__("json").loads(stored)
    assert stored == {"format_version": SUMMARY_FORMAT, "metrics": metrics}
    assert ledger.get_run(run)["summary"] == metrics and ledger.list_runs()[0]["summary"] == metrics
    # a run finished before summaries carried a version reads the same
    with sa.create_engine(db_url).begin() as conn:
        conn.execute(ledger.t["eval_runs"].update().values(summary=metrics))
    assert ledger.get_run(run)["summary"] == metrics


def test_a_batch_of_generations_is_stored_in_one_statement(db_url):
    """300 generations: one INSERT for the run's rows; one lookup and one INSERT for the cache
    (statements counted at the DB-API cursor), and a second caching of the same keys inserts nothing."""
    ledger = Ledger(db_url)
    run = ledger.add_run(suite_name="s", suite_hash="s" * 64, model="m", model_hash="b" * 64, backend="hf",
                         decoding={}, seed=0, scorers=[])
    statements: list[str] = []
    sa.event.listen(ledger.engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: statements.append(statement.split()[0]))
    gen = {"output": "o", "input_tokens": 1, "output_tokens": 1, "latency_s": 0.1}
    ledger.add_generations(run, [{"item_id": f"i{i}", "item_hash": "x", "slices": {}, "messages": [], **gen} for i in range(300)])
    assert statements == ["INSERT"]
    statements.clear()
    cache = [{"key": f"k{i}", "finish_reason": None, **gen} for i in range(300)]
    ledger.cache_generations(cache)
    assert statements == ["SELECT", "INSERT"]
    statements.clear()
    ledger.cache_generations(cache)
    assert statements == ["SELECT"] and len(ledger.cached_generations([c["key"] for c in cache])) == 300
    assert len(ledger.generations(run)) == 300


def test_unknown_references_are_clear_errors(ledger):
    with pytest.raises(PreflineError, match="unknown dataset 'nope'.*prefline data ingest"):
        ledger.get_dataset("nope")
    with pytest.raises(PreflineError, match="unknown adapter"):
        ledger.get_adapter("nope")
    with pytest.raises(PreflineError, match="unknown eval run 42"):
        ledger.get_run(42)
    with pytest.raises(PreflineError, match="must be a number"):
        ledger.get_run("abc")


def test_sqlite_uses_wal(ledger):
    with ledger.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA busy_timeout")).scalar() == 30000


def test_db_url_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLINE_DB_URL", f"sqlite:///{tmp_path / 'team.db'}")
    Ledger()
    assert (tmp_path / "team.db").exists()


def test_password_is_masked():
    with pytest.raises(PreflineError) as info:
        Ledger("postgresql+psycopg2://user:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(info.value)
