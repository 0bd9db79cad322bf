"""The ledger: the one record of datasets, adapters, eval runs and gate decisions.

SQLite at ``$PREFLINE_HOME/ledger.db`` by default (WAL, busy timeout), any SQLAlchemy
URL through ``PREFLINE_DB_URL`` (PostgreSQL for a team). The schema is defined only by
the ordered migrations below; each is applied once and recorded in ``schema_migrations``,
so opening a ledger is always safe. Queries use the tables as reflected after migrating.
Schema changes are new migrations appended to ``MIGRATIONS``, never edits to old ones.

This is the one module that issues SQL (a test fails when another one does), so it is longer than
the others: the migrations, then every query, grouped by table; queries that the stages read by
name return typed rows (the dataclasses below), the older ones dicts of the columns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from prefline.errors import PreflineError
from prefline.home import prefline_home

SCHEMA_VERSION_TABLE = "schema_migrations"


class VersionTaken(PreflineError):
    """Another process recorded this dataset name and version first (the caller takes the next number)."""


def utcnow() -> datetime:
    """Now in UTC, without a time zone: how every timestamp in the ledger is stored."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


RunStatus = Literal["running", "done", "failed"]        # eval_runs.status
AdapterStatus = Literal["running", "done", "failed"]    # adapters.status
Relation = Literal["refresh", "mix", "decontaminate", "split"]  # dataset_lineage.relation
# eval_runs.summary is stored as {"format_version": SUMMARY_FORMAT, "metrics": {metric: {slice: {n, mean, ci}}}};
# runs finished before it carried a version hold the metrics alone. Reading a run gives the metrics as
# ``summary`` either way. (gate_decisions.results carries its own ``format_version``: gate.compare's.)
SUMMARY_FORMAT = 1


@dataclass(frozen=True)
class LineageRow:
    """One parent of a dataset version (table ``dataset_lineage``), with the parent's name and version."""

    id: int
    dataset_id: int
    parent_id: int
    relation: Relation
    params: dict[str, Any] | None
    diff: dict[str, Any] | None
    changed_share: float | None
    major_change: bool
    is_primary: bool
    created_at: datetime
    parent_name: str
    parent_version: int


@dataclass(frozen=True)
class ProbeRow:
    """A drift probe taken while an adapter trained (table ``train_probes``)."""

    adapter_id: int
    step: int
    metrics: dict[str, Any]
    outputs: list[dict[str, Any]]
    created_at: datetime


def _run(row: dict[str, Any]) -> dict[str, Any]:
    """An eval_runs row with its stored summary read back as the metrics it holds (see SUMMARY_FORMAT)."""
    summary = row.get("summary")
    if isinstance(summary, dict) and "format_version" in summary:
        row["summary"] = summary["metrics"]
    return row


def _typed(cls, row: dict[str, Any]):
    return cls(**{f.name: row[f.name] for f in fields(cls)})


# --- migrations ---------------------------------------------------------------------------


def _m001_initial(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "datasets", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("rejects_path", sa.Text),
        sa.Column("source_file", sa.Text),
        sa.Column("source_hash", sa.String(64)),
        sa.Column("n_read", sa.Integer, nullable=False),
        sa.Column("n_accepted", sa.Integer, nullable=False),
        sa.Column("n_rejected", sa.Integer, nullable=False),
        sa.Column("n_duplicates", sa.Integer, nullable=False),
        sa.Column("meta", sa.JSON),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_dataset_name_version"),
    )
    sa.Table(
        "adapters", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("method", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("base_model", sa.Text, nullable=False),
        sa.Column("base_model_hash", sa.String(64), nullable=False),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("dataset_hash", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("surface", sa.String(50)),
        sa.Column("path", sa.Text),
        sa.Column("adapter_hash", sa.String(64)),
        sa.Column("metrics", sa.JSON),
        sa.Column("versions", sa.JSON),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
    )
    sa.Table(
        "train_steps", md,
        sa.Column("adapter_id", sa.Integer, sa.ForeignKey("adapters.id"), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "eval_runs", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("suite_name", sa.String(200), nullable=False),
        sa.Column("suite_hash", sa.String(64), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("model_hash", sa.String(64), nullable=False),
        sa.Column("adapter_id", sa.Integer, sa.ForeignKey("adapters.id")),
        sa.Column("adapter_hash", sa.String(64)),
        sa.Column("backend", sa.String(50), nullable=False),
        sa.Column("decoding", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("scorers", sa.JSON, nullable=False),
        sa.Column("versions", sa.JSON),
        sa.Column("summary", sa.JSON),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
    )
    sa.Table(
        "generations", md,
        sa.Column("run_id", sa.Integer, sa.ForeignKey("eval_runs.id"), primary_key=True),
        sa.Column("item_id", sa.String(200), primary_key=True),
        sa.Column("item_hash", sa.String(64), nullable=False),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.Column("messages", sa.JSON, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("latency_s", sa.Float, nullable=False),
        sa.Column("finish_reason", sa.String(20)),
    )
    sa.Table(
        "scores", md,
        sa.Column("run_id", sa.Integer, sa.ForeignKey("eval_runs.id"), primary_key=True),
        sa.Column("item_id", sa.String(200), primary_key=True),
        sa.Column("metric", sa.String(100), primary_key=True),
        sa.Column("scorer", sa.String(100), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("evidence", sa.JSON),
    )
    sa.Table(
        "gate_decisions", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("baseline_run_id", sa.Integer, sa.ForeignKey("eval_runs.id"), nullable=False),
        sa.Column("candidate_run_id", sa.Integer, sa.ForeignKey("eval_runs.id"), nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("results", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    md.create_all(conn)


def _m002_suites_and_generation_cache(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "suites", md,
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("frozen", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "generation_cache", md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("latency_s", sa.Float, nullable=False),
        sa.Column("finish_reason", sa.String(20)),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    md.create_all(conn)
    conn.execute(sa.text("ALTER TABLE eval_runs ADD COLUMN replay_of INTEGER"))
    conn.execute(sa.text("ALTER TABLE generations ADD COLUMN cache_key VARCHAR(64)"))


def _m003_generation_ttft(conn: Connection) -> None:
    """Time to first token on every generation; token counts may be NULL (a server that reports no usage).

    SQLite cannot drop NOT NULL in place, so there the two tables are rebuilt and their rows
    copied. Each step checks what is already done, so a migration cut short can run again.
    """
    for table in ("generations", "generation_cache"):
        columns = {c["name"]: c for c in sa.inspect(conn).get_columns(table)}
        if "ttft_s" not in columns:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN ttft_s FLOAT"))
        relax = [name for name in ("input_tokens", "output_tokens") if not columns[name]["nullable"]]
        if not relax:
            continue
        if conn.dialect.name != "sqlite":
            for name in relax:
                conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL"))
            continue
        md = sa.MetaData()
        old = sa.Table(table, md, autoload_with=conn)
        scratch = f"{table}__m003"
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {scratch}"))
        new = old.to_metadata(md, name=scratch)
        for name in relax:
            new.c[name].nullable = True
        new.create(conn)
        names = ", ".join(old.columns.keys())
        conn.execute(sa.text(f"INSERT INTO {scratch} ({names}) SELECT {names} FROM {table}"))
        old.drop(conn)
        conn.execute(sa.text(f"ALTER TABLE {scratch} RENAME TO {table}"))


def _m004_preference_evals(conn: Connection) -> None:
    md = sa.MetaData()
    md.reflect(conn, only=["datasets", "adapters", "eval_runs"])  # the tables its foreign keys point to
    sa.Table(
        "preference_evals", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(30), nullable=False),  # pair_accuracy, reward_accuracy, win_rate
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id")),
        sa.Column("adapter_id", sa.Integer, sa.ForeignKey("adapters.id")),
        sa.Column("baseline_run_id", sa.Integer, sa.ForeignKey("eval_runs.id")),
        sa.Column("candidate_run_id", sa.Integer, sa.ForeignKey("eval_runs.id")),
        sa.Column("judge", sa.JSON),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    md.create_all(conn)


def _m005_train_probes(conn: Connection) -> None:
    """Drift probes taken while an adapter trains: per probe step, the mean response length and refusal
    rate on a few suite prompts (``metrics``) and the responses themselves (``outputs``)."""
    md = sa.MetaData()
    md.reflect(conn, only=["adapters"])
    sa.Table(
        "train_probes", md,
        sa.Column("adapter_id", sa.Integer, sa.ForeignKey("adapters.id"), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    md.create_all(conn)


def _m006_dataset_signals(conn: Connection) -> None:
    """Datasets built from signals: records excluded (valid, but yielding no pair) complete
    ``read = accepted + rejected + duplicates + excluded``; ``n_pairs`` counts the stored pairs,
    which differ from accepted records once several signals are combined into one pair."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("datasets")}
    if "n_excluded" not in columns:
        conn.execute(sa.text("ALTER TABLE datasets ADD COLUMN n_excluded INTEGER NOT NULL DEFAULT 0"))
    if "n_pairs" not in columns:
        conn.execute(sa.text("ALTER TABLE datasets ADD COLUMN n_pairs INTEGER"))


def _m007_dataset_lineage(conn: Connection) -> None:
    """Dataset lineage: one row per (version, parent) with how it was derived (``relation``: refresh, mix,
    decontaminate), its ``params`` (e.g. mixture weights and seed), the diff against that parent, the share
    of pairs that changed and whether that makes a major change. ``is_primary`` marks the parent the
    version's major-change flag is read from (its previous version when it has one)."""
    md = sa.MetaData()
    md.reflect(conn, only=["datasets"])
    sa.Table(
        "dataset_lineage", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("relation", sa.String(30), nullable=False),
        sa.Column("params", sa.JSON),
        sa.Column("diff", sa.JSON),
        sa.Column("changed_share", sa.Float),
        sa.Column("major_change", sa.Boolean, nullable=False),
        sa.Column("is_primary", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("dataset_id", "parent_id", name="uq_dataset_lineage_parent"),
    )
    md.create_all(conn)


def _m008_releases(conn: Connection) -> None:
    """Releases per product surface, append-only: one row per promotion, rollback or reference pin.

    Each row is the surface's whole state after it: the live adapter (``adapter_id`` NULL and
    ``adapter_name`` ``base`` for the base model), the eval run recorded for it on the surface's
    suite, the gate decision that allowed it, and the surface's reference run (the drift
    budget's anchor). ``seq`` numbers a surface's rows 1, 2, ...; a writer takes the next number
    after the row it decided against, so of two promotions racing on one surface the unique
    ``(surface, seq)`` lets only one in."""
    md = sa.MetaData()
    md.reflect(conn, only=["adapters", "eval_runs", "gate_decisions"])
    sa.Table(
        "releases", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("surface", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),  # promote, rollback, pin
        sa.Column("adapter_id", sa.Integer, sa.ForeignKey("adapters.id")),
        sa.Column("adapter_name", sa.String(200), nullable=False),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("eval_runs.id"), nullable=False),
        sa.Column("decision_id", sa.Integer, sa.ForeignKey("gate_decisions.id")),
        sa.Column("reference_run_id", sa.Integer, sa.ForeignKey("eval_runs.id"), nullable=False),
        sa.Column("suite_name", sa.String(200), nullable=False),
        sa.Column("suite_hash", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("actor", sa.String(200)),
        sa.Column("outcome", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("surface", "seq", name="uq_release_surface_seq"),
    )
    md.create_all(conn)


def _m009_run_errors(conn: Connection) -> None:
    """Why an eval run stopped: ``error`` holds the reason of a run marked ``failed`` (an unreachable server,
    a scorer error, an interrupt), NULL for a run that finished or is still running."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("eval_runs")}
    if "error" not in columns:
        conn.execute(sa.text("ALTER TABLE eval_runs ADD COLUMN error TEXT"))


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("m001_initial", _m001_initial),
    ("m002_suites_and_generation_cache", _m002_suites_and_generation_cache),
    ("m003_generation_ttft", _m003_generation_ttft),
    ("m004_preference_evals", _m004_preference_evals),
    ("m005_train_probes", _m005_train_probes),
    ("m006_dataset_signals", _m006_dataset_signals),
    ("m007_dataset_lineage", _m007_dataset_lineage),
    ("m008_releases", _m008_releases),
    ("m009_run_errors", _m009_run_errors),
]


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations this database has not seen, in order; return their names.

    Safe to race: several processes opening a fresh ledger at once take turns (a lock file beside a
    SQLite database, an advisory lock on PostgreSQL); one applies the migrations, the others then
    find them applied. A ledger already up to date takes no lock.
    """
    md = sa.MetaData()
    record = sa.Table(
        SCHEMA_VERSION_TABLE, md,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("applied_at", sa.DateTime, nullable=False),
    )
    if not _pending(engine, record):
        return []
    applied: list[str] = []
    with _migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        md.create_all(conn)
        done = {row.name for row in conn.execute(sa.select(record.c.name))}
        for name, step in MIGRATIONS:
            if name in done:
                continue
            step(conn)
            conn.execute(record.insert().values(name=name, applied_at=utcnow()))
            applied.append(name)
    return applied


_PG_MIGRATION_LOCK = 0x70726566  # "pref": the advisory lock key that serialises migrations on PostgreSQL


def _pending(engine: Engine, record: sa.Table) -> bool:
    """Whether any migration is not yet recorded (read without a lock)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(SCHEMA_VERSION_TABLE):
            return True
        done = {row.name for row in conn.execute(sa.select(record.c.name))}
    return any(name not in done for name, _ in MIGRATIONS)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """A lock file beside a SQLite database file; other databases lock inside the transaction."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    from filelock import FileLock

    with FileLock(f"{database}.migrate.lock", timeout=120):
        yield


# --- the ledger ---------------------------------------------------------------------------


def default_url() -> str:
    return os.environ.get("PREFLINE_DB_URL") or f"sqlite:///{prefline_home() / 'ledger.db'}"


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cursor = dbapi_conn.cursor()
            # WAL lets an eval read while a training run writes step metrics.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


class Ledger:
    """Typed access to the ledger's tables; one instance per process is enough."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        try:
            self.engine = _make_engine(self.url)
            migrate(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise PreflineError(f"cannot open the ledger at {self.safe_url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc
        self.md = sa.MetaData()
        self.md.reflect(self.engine)
        self.t = self.md.tables

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    # -- generic helpers
    def _insert(self, table: str, **values: Any) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(self.t[table].insert().values(**values))
            return result.inserted_primary_key[0]

    def _update(self, table: str, row_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.t[table].update().where(self.t[table].c.id == row_id).values(**values))

    def _rows(self, query: sa.Select) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def _one(self, query: sa.Select) -> dict[str, Any] | None:
        rows = self._rows(query)
        return rows[0] if rows else None

    # -- datasets
    def next_dataset_version(self, name: str) -> int:
        t = self.t["datasets"]
        current = self._one(sa.select(sa.func.max(t.c.version).label("v")).where(t.c.name == name))
        return (current["v"] or 0) + 1 if current else 1

    def add_dataset(self, **values: Any) -> int:
        """Record a dataset version; :class:`VersionTaken` when another process recorded that number first."""
        try:
            return self._insert("datasets", created_at=utcnow(), **values)
        except sa.exc.IntegrityError as exc:
            t = self.t["datasets"]
            if self._one(sa.select(t.c.id).where(t.c.name == values["name"], t.c.version == values["version"])) is not None:
                raise VersionTaken(f"dataset {values['name']}@{values['version']} was recorded by another process") from exc
            raise

    def get_dataset(self, ref: str) -> dict[str, Any]:
        """A dataset by ``name`` (latest version), ``name@version`` or numeric id."""
        t = self.t["datasets"]
        name, _, version = ref.partition("@")
        query = sa.select(t).where(t.c.name == name)
        if version:
            if not version.isdigit():
                raise PreflineError(f"dataset reference {ref!r}: the version after '@' must be a number")
            query = query.where(t.c.version == int(version))
        row = self._one(query.order_by(t.c.version.desc()).limit(1))
        if row is None and ref.isdigit():
            row = self._one(sa.select(t).where(t.c.id == int(ref)))
        if row is None:
            known = ", ".join(sorted({d["name"] for d in self.list_datasets()})) or "none yet"
            raise PreflineError(f"unknown dataset {ref!r} (known: {known}); create one with `prefline data ingest FILE --name NAME`")
        return row

    def list_datasets(self) -> list[dict[str, Any]]:
        t = self.t["datasets"]
        return self._rows(sa.select(t).order_by(t.c.id))

    def previous_dataset(self, name: str, version: int) -> dict[str, Any] | None:
        """The latest version of ``name`` before ``version``, if any."""
        t = self.t["datasets"]
        return self._one(sa.select(t).where(t.c.name == name, t.c.version < version).order_by(t.c.version.desc()).limit(1))

    # -- dataset lineage
    def add_lineage(self, *, dataset_id: int, parent_id: int, relation: Relation, params: dict[str, Any] | None,
                    diff: dict[str, Any] | None, changed_share: float | None, major_change: bool, is_primary: bool) -> int:
        """Record one parent of a dataset version and how the version was derived from it."""
        return self._insert("dataset_lineage", created_at=utcnow(), dataset_id=dataset_id, parent_id=parent_id, relation=relation,
                            params=params, diff=diff, changed_share=changed_share, major_change=major_change, is_primary=is_primary)

    def dataset_parents(self, dataset_id: int) -> list[LineageRow]:
        """The recorded parents of a dataset version, in the order they were recorded."""
        t, d = self.t["dataset_lineage"], self.t["datasets"]
        query = (sa.select(t, d.c.name.label("parent_name"), d.c.version.label("parent_version"))
                 .join(d, d.c.id == t.c.parent_id).where(t.c.dataset_id == dataset_id).order_by(t.c.id))
        return [_typed(LineageRow, row) for row in self._rows(query)]

    # -- adapters
    def add_adapter(self, *, status: AdapterStatus, **values: Any) -> int:
        return self._insert("adapters", created_at=utcnow(), status=status, **values)

    def update_adapter(self, adapter_id: int, status: AdapterStatus | None = None, **values: Any) -> None:
        self._update("adapters", adapter_id, **({"status": status} if status is not None else {}), **values)

    def find_adapter(self, name: str) -> dict[str, Any] | None:
        t = self.t["adapters"]
        return self._one(sa.select(t).where(t.c.name == name))

    def get_adapter(self, ref: str | int, finished: bool = True) -> dict[str, Any]:
        """An adapter by name or id; with ``finished``, only one whose training completed."""
        t = self.t["adapters"]
        row = self.find_adapter(str(ref))
        if row is None and str(ref).isdigit():
            row = self._one(sa.select(t).where(t.c.id == int(ref)))
        if row is None:
            raise PreflineError(f"unknown adapter {ref!r}; `prefline adapters list` shows the registered ones")
        if finished and row["status"] != "done":
            raise PreflineError(f"adapter {ref!r} did not finish training (status: {row['status']})")
        return row

    def list_adapters(self) -> list[dict[str, Any]]:
        t = self.t["adapters"]
        return self._rows(sa.select(t).order_by(t.c.id))

    def add_train_step(self, adapter_id: int, step: int, metrics: dict[str, float]) -> None:
        self._insert("train_steps", adapter_id=adapter_id, step=step, metrics=metrics, created_at=utcnow())

    def train_steps(self, adapter_id: int) -> list[dict[str, Any]]:
        t = self.t["train_steps"]
        return self._rows(sa.select(t).where(t.c.adapter_id == adapter_id).order_by(t.c.step))

    def add_probe(self, adapter_id: int, step: int, metrics: dict[str, Any], outputs: list[dict[str, Any]]) -> None:
        """Record a drift probe taken at ``step`` of an adapter's training."""
        self._insert("train_probes", adapter_id=adapter_id, step=step, metrics=metrics, outputs=outputs, created_at=utcnow())

    def probes(self, adapter_id: int) -> list[ProbeRow]:
        t = self.t["train_probes"]
        return [_typed(ProbeRow, row) for row in self._rows(sa.select(t).where(t.c.adapter_id == adapter_id).order_by(t.c.step))]

    def forget_steps_after(self, adapter_id: int, step: int) -> None:
        """Delete the step metrics and probes recorded after ``step`` (a resumed run records them again)."""
        with self.engine.begin() as conn:
            for name in ("train_steps", "train_probes"):
                t = self.t[name]
                conn.execute(t.delete().where(t.c.adapter_id == adapter_id, t.c.step > step))

    # -- eval runs
    def add_run(self, *, status: RunStatus = "running", **values: Any) -> int:
        return self._insert("eval_runs", created_at=utcnow(), status=status, **values)

    def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        """Mark a run ``done`` with its summary (metric -> slice -> n, mean, interval)."""
        self._update("eval_runs", run_id, status="done", summary={"format_version": SUMMARY_FORMAT, "metrics": summary},
                     finished_at=utcnow())

    def fail_run(self, run_id: int, reason: str) -> None:
        """Mark a run that stopped with an error (or an interrupt) ``failed``, with the reason."""
        self._update("eval_runs", run_id, status="failed", error=reason[:2000], finished_at=utcnow())

    def get_run(self, run_id: int | str) -> dict[str, Any]:
        t = self.t["eval_runs"]
        if not str(run_id).isdigit():
            raise PreflineError(f"run id must be a number, got {run_id!r}; `prefline runs list` shows them")
        row = self._one(sa.select(t).where(t.c.id == int(run_id)))
        if row is None:
            raise PreflineError(f"unknown eval run {run_id}; `prefline runs list` shows them")
        return _run(row)

    def list_runs(self) -> list[dict[str, Any]]:
        t = self.t["eval_runs"]
        return [_run(row) for row in self._rows(sa.select(t).order_by(t.c.id))]

    def add_generations(self, run_id: int, rows: Iterable[dict[str, Any]]) -> None:
        rows = [{"run_id": run_id, **row} for row in rows]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.t["generations"].insert(), rows)

    def add_scores(self, run_id: int, rows: Iterable[dict[str, Any]]) -> None:
        rows = [{"run_id": run_id, **row} for row in rows]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.t["scores"].insert(), rows)

    def generations(self, run_id: int) -> list[dict[str, Any]]:
        t = self.t["generations"]
        return self._rows(sa.select(t).where(t.c.run_id == run_id).order_by(t.c.item_id))

    def scores(self, run_id: int) -> list[dict[str, Any]]:
        t = self.t["scores"]
        return self._rows(sa.select(t).where(t.c.run_id == run_id).order_by(t.c.item_id, t.c.metric))

    # -- suites
    def add_suite(self, **values: Any) -> None:
        """Record a suite's full content under its hash (once; later calls only raise ``frozen``)."""
        t = self.t["suites"]
        existing = self._one(sa.select(t.c.hash, t.c.frozen).where(t.c.hash == values["hash"]))
        with self.engine.begin() as conn:
            if existing is None:
                conn.execute(t.insert().values(created_at=utcnow(), **values))
            elif values.get("frozen") and not existing["frozen"]:
                conn.execute(t.update().where(t.c.hash == values["hash"]).values(frozen=True))

    def get_suite(self, suite_hash: str) -> dict[str, Any] | None:
        t = self.t["suites"]
        return self._one(sa.select(t).where(t.c.hash == suite_hash))

    def frozen_suite(self, name: str, version: int) -> dict[str, Any] | None:
        t = self.t["suites"]
        return self._one(sa.select(t).where(t.c.name == name, t.c.version == version, t.c.frozen.is_(True)))

    def list_suites(self) -> list[dict[str, Any]]:
        t = self.t["suites"]
        return self._rows(sa.select(t.c.hash, t.c.name, t.c.version, t.c.frozen, t.c.path, t.c.created_at).order_by(t.c.created_at))

    # -- generation cache
    def cached_generations(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        t = self.t["generation_cache"]
        found: dict[str, dict[str, Any]] = {}
        unique = sorted(set(keys))
        for start in range(0, len(unique), 500):  # stay under bound-parameter limits
            for row in self._rows(sa.select(t).where(t.c.key.in_(unique[start:start + 500]))):
                found[row["key"]] = row
        return found

    def cache_generations(self, rows: list[dict[str, Any]]) -> None:
        """Store a batch of generations under their keys (those not cached yet): one lookup, one insert."""
        t = self.t["generation_cache"]
        known = self.cached_generations([r["key"] for r in rows])
        fresh = [r for r in rows if r["key"] not in known]
        if fresh:
            with self.engine.begin() as conn:
                conn.execute(t.insert(), [{**r, "created_at": utcnow()} for r in fresh])

    # -- preference layer
    def add_preference_eval(self, **values: Any) -> int:
        return self._insert("preference_evals", created_at=utcnow(), **values)

    def preference_evals(self) -> list[dict[str, Any]]:
        t = self.t["preference_evals"]
        return self._rows(sa.select(t).order_by(t.c.id))

    # -- gate
    def add_gate_decision(self, **values: Any) -> int:
        return self._insert("gate_decisions", created_at=utcnow(), **values)

    def gate_decisions(self) -> list[dict[str, Any]]:
        t = self.t["gate_decisions"]
        return self._rows(sa.select(t).order_by(t.c.id))

    # -- releases (append-only: rows are added, never changed)
    def add_release(self, **values: Any) -> int:
        """Append a release row; ``seq`` must be one past the surface's latest row when the caller read it.

        If another writer appended that number first (a promotion racing this one), nothing is
        written and the error says so: the caller's decision was made against a state that is gone.
        """
        try:
            return self._insert("releases", created_at=utcnow(), **values)
        except sa.exc.IntegrityError as exc:
            latest = self.latest_release(values["surface"])
            if latest is not None and latest["seq"] >= values["seq"]:
                raise PreflineError(
                    f"surface {values['surface']!r} changed while this release was decided: release {latest['id']} "
                    f"({latest['action']} of {latest['adapter_name']}) was recorded first; nothing was recorded, run again"
                ) from exc
            raise

    def releases(self, surface: str | None = None) -> list[dict[str, Any]]:
        t = self.t["releases"]
        query = sa.select(t).order_by(t.c.surface, t.c.seq)
        if surface is not None:
            query = query.where(t.c.surface == surface)
        return self._rows(query)

    def latest_release(self, surface: str) -> dict[str, Any] | None:
        t = self.t["releases"]
        return self._one(sa.select(t).where(t.c.surface == surface).order_by(t.c.seq.desc()).limit(1))

    def get_release(self, release_id: int) -> dict[str, Any] | None:
        t = self.t["releases"]
        return self._one(sa.select(t).where(t.c.id == release_id))

    def get_gate_decision(self, decision_id: int) -> dict[str, Any] | None:
        t = self.t["gate_decisions"]
        return self._one(sa.select(t).where(t.c.id == decision_id))
