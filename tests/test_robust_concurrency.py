"""Several processes at once: ingests into one dataset name, on a home whose ledger does not exist yet.

Every process either succeeds or fails with one clear line; afterwards the ledger lists dense
version numbers 1..N, every listed version has its files, and no temporary folder is left.
Run on SQLite and on a real PostgreSQL server (loopback).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from conftest import pair, write_jsonl

N = 5


def _at_once(argv_list: list[list[str]], env: dict[str, str]) -> list[tuple[int, str, str]]:
    procs = [subprocess.Popen([sys.executable, "-m", "prefline", *argv], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for argv in argv_list]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        out.append((proc.returncode, stdout, stderr))
    return out


def _check_outcomes(outcomes) -> None:
    for rc, _stdout, stderr in outcomes:
        assert "Traceback" not in stderr, stderr
        if rc != 0:  # a loser may fail, but with one line that says why
            lines = [line for line in stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), stderr


def _ingest_race(tmp_path, env, ledger_url=None):
    from prefline.ledger import Ledger

    files = [write_jsonl(tmp_path / f"in{k}.jsonl", [pair(i + 10 * k) for i in range(5)]) for k in range(N)]
    outcomes = _at_once([["data", "ingest", str(f), "--name", "same", "--json"] for f in files], env)
    _check_outcomes(outcomes)
    assert all(rc == 0 for rc, _, _ in outcomes), [err for _, _, err in outcomes]
    rows = Ledger(ledger_url).list_datasets()
    assert sorted(r["version"] for r in rows) == list(range(1, N + 1))  # dense, each once
    for row in rows:
        assert pq.read_metadata(row["path"]).num_rows == row["n_pairs"] == 5
    folder = os.path.join(env["PREFLINE_HOME"], "datasets", "same")
    assert sorted(os.listdir(folder)) == [f"v{k}" for k in range(1, N + 1)]  # nothing partial, nothing orphaned
    # a sixth ingest after the race takes the next number
    again = _at_once([["data", "ingest", str(files[0]), "--name", "same"]], env)
    assert again[0][0] == 0, again[0][2]
    assert max(r["version"] for r in Ledger(ledger_url).list_datasets()) == N + 1


def _env(home) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFLINE_HOME"] = str(home)
    env.pop("PREFLINE_DB_URL", None)
    return env


def test_concurrent_ingests_into_one_name_on_a_fresh_sqlite_home(tmp_path):
    home = tmp_path / "fresh"
    env = _env(home)
    _ingest_race(tmp_path, env, f"sqlite:///{home / 'ledger.db'}")


def test_concurrent_first_opens_of_a_fresh_sqlite_ledger(tmp_path):
    env = _env(tmp_path / "fresh")
    outcomes = _at_once([["data", "list", "--json"] for _ in range(N)], env)
    _check_outcomes(outcomes)
    assert [rc for rc, _, _ in outcomes] == [0] * N
    assert all(stdout.strip() == "[]" for _, stdout, _ in outcomes)


@pytest.mark.postgres
def test_concurrent_ingests_into_one_name_on_a_fresh_postgres_ledger(tmp_path, pg_url):
    env = _env(tmp_path / "fresh")
    env["PREFLINE_DB_URL"] = pg_url
    _ingest_race(tmp_path, env, pg_url)


@pytest.mark.postgres
def test_concurrent_migrations_on_postgres(pg_url):
    """Threads opening one fresh PostgreSQL ledger at once: one migrates, the others find it done."""
    from concurrent.futures import ThreadPoolExecutor

    from prefline.ledger import MIGRATIONS, Ledger

    with ThreadPoolExecutor(N) as pool:
        ledgers = list(pool.map(lambda _: Ledger(pg_url), range(N)))
    with ledgers[0].engine.connect() as conn:
        applied = [r[0] for r in conn.execute(sa.text("SELECT name FROM schema_migrations"))]
    assert sorted(applied) == sorted(name for name, _ in MIGRATIONS)
