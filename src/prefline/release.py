"""Releases per product surface: promote an adapter (or the base model), roll back, and confirm recovery.

A *surface* (chat, code, voice, or any name) maps to the suite its releases are evaluated on
and the gate policy a promotion must pass (``surfaces.yaml``: ``--surfaces FILE``, else
``$PREFLINE_HOME/surfaces.yaml``, else the shipped one). The ledger's ``releases`` table is
append-only and each row is the surface's whole state after it: what is live, the eval run
recorded for it, the gate decision that let it in, and the surface's reference run.

- **promote**: evaluate the candidate on the surface's suite (cached generations make a re-run
  cheap), gate it against the live release's run under the surface's policy (with the
  reference run for the drift budget, when the gate takes one) and record it only on a pass,
  or when forced with a reason. The first release on a surface needs no gate: there is nothing
  live to compare with, and it becomes the surface's reference run.
- **rollback**: make the adapter that was live before the current one live again, re-run the
  suite on it and compare the new run with the run recorded when it was last live, in both
  directions: recovery is confirmed when no gated check differs beyond its margin.
- **pin**: make another run of the live adapter the surface's reference.

Two writers deciding against the same state cannot both be recorded: each appends the next
``seq`` after the row it read, and the ledger's unique ``(surface, seq)`` admits only the first.

(A little over 400 lines: promote, rollback and pin share the append-only state machine and the
surfaces file; keeping them together keeps the one place where a release row is written.)
"""

from __future__ import annotations

import getpass
import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from prefline.config import GatePolicy, SurfaceConfig, SurfacesFile, load_policy, load_yaml
from prefline.errors import PreflineError
from prefline.home import prefline_home
from prefline.ledger import Ledger

BASE = "base"  # the name a release of the base model alone goes by

Progress = Callable[[str], None]


# --- surfaces --------------------------------------------------------------------------------


def surfaces_path(path: str | Path | None = None) -> Path:
    """The surfaces file in force: ``path``, else the home's ``surfaces.yaml``, else the shipped one."""
    if path is not None:
        if not Path(path).is_file():
            raise PreflineError(f"surfaces file {path}: no such file")
        return Path(path)
    home = prefline_home() / "surfaces.yaml"
    if home.is_file():
        return home
    return Path(str(resources.files("prefline") / "resources" / "surfaces.yaml"))


def load_surfaces(path: str | Path | None = None) -> dict[str, SurfaceConfig]:
    """Every surface of the surfaces file, with suite and policy paths made absolute."""
    source = surfaces_path(path)
    parsed = load_yaml(source, SurfacesFile)
    out = {}
    for name, surface in parsed.surfaces.items():
        out[name] = surface.model_copy(update={"suite": _relative_to(source, surface.suite), "policy": _relative_to(source, surface.policy)})
    return out


def _relative_to(source: Path, ref: str) -> str:
    """A path written in the surfaces file is relative to it; a shipped name stays a name."""
    candidate = source.parent / ref
    return str(candidate) if not Path(ref).is_absolute() and candidate.exists() else ref


def get_surface(name: str, path: str | Path | None = None) -> SurfaceConfig:
    surfaces = load_surfaces(path)
    if name not in surfaces:
        raise PreflineError(f"unknown surface {name!r} in {surfaces_path(path)} (defined: {', '.join(sorted(surfaces))}); "
                            "add it there or pass --surfaces FILE")
    return surfaces[name]


# --- results ---------------------------------------------------------------------------------


@dataclass
class PromoteResult:
    surface: str
    target: str
    promoted: bool
    release: dict[str, Any] | None          # the recorded row, when promoted
    candidate_run: int
    live_before: dict[str, Any] | None      # the row that was live when the decision was made
    gate: Any = None                        # the GateResult, when a gate ran
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "gate"}
        out["gate"] = self.gate.as_dict() if self.gate is not None else None
        return out


@dataclass
class RollbackResult:
    surface: str
    release: dict[str, Any]                 # the recorded rollback row
    rolled_back: dict[str, Any]             # the row that was live before
    restored: dict[str, Any]                # the earlier row whose adapter is live again
    confirmed: bool
    differences: list[dict[str, Any]] = field(default_factory=list)  # checks that differ beyond their margin
    gates: list[Any] = field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "gates"}
        out["gates"] = [g.as_dict() for g in self.gates]
        return out


# --- promote ---------------------------------------------------------------------------------


def promote(ledger: Ledger, surface: str, target: str, *, force: bool = False, reason: str | None = None,
            surfaces: str | Path | None = None, progress: Progress | None = None) -> PromoteResult:
    """Make ``target`` (an adapter name, ``base``, or an eval run id) live on ``surface`` if the gate passes.

    Without a pass, nothing is recorded unless ``force`` is set with a ``reason``; the gate's
    decision is recorded either way. Raises :class:`PreflineError` for bad input and when
    another release on the surface was recorded while this one was decided.
    """
    say = progress or (lambda _msg: None)
    if force and not (reason or "").strip():
        raise PreflineError("--force needs --reason TEXT: a forced release records why it skipped the gate")
    config = get_surface(surface, surfaces)
    policy = load_policy(config.policy)
    live = ledger.latest_release(surface)
    adapter, cand_run = _target_run(ledger, surface, config, target, live, say)
    name = adapter["name"] if adapter else BASE

    gate = None
    if live is None:
        reference = cand_run
        message = f"first release on {surface}: nothing live to gate against; run {cand_run} becomes the surface's reference"
    else:
        reference = live["reference_run_id"]
        live_run = _comparable_live_run(ledger, surface, config, live, cand_run, say)
        say(f"gating run {cand_run} ({name}) against run {live_run} ({live['adapter_name']}, live on {surface}) under policy {policy.name}")
        gate = _gate(ledger, live_run, cand_run, policy, reference_run=reference)
        if gate.verdict != "pass" and not force:
            return PromoteResult(surface, name, False, None, cand_run, live, gate,
                                 f"the gate's verdict is {gate.verdict} (decision {gate.decision_id}); "
                                 "fix the candidate, or promote with --force --reason TEXT")
        message = (f"gate passed (decision {gate.decision_id})" if gate.verdict == "pass"
                   else f"forced past a {gate.verdict} gate (decision {gate.decision_id}): {reason}")
    run = ledger.get_run(cand_run)
    release_id = ledger.add_release(
        surface=surface, seq=(live["seq"] + 1) if live else 1, action="promote",
        adapter_id=adapter["id"] if adapter else None, adapter_name=name, run_id=cand_run,
        decision_id=gate.decision_id if gate else None, reference_run_id=reference,
        suite_name=run["suite_name"], suite_hash=run["suite_hash"], policy=policy.name,
        forced=bool(gate is not None and gate.verdict != "pass"), reason=reason, actor=_actor(),
        outcome={"verdict": gate.verdict if gate else None, "replaced": live["id"] if live else None, "note": message},
    )
    return PromoteResult(surface, name, True, ledger.get_release(release_id), cand_run, live, gate, message)


def _target_run(ledger: Ledger, surface: str, config: SurfaceConfig, target: str, live: dict[str, Any] | None,
                say: Progress) -> tuple[dict[str, Any] | None, int]:
    """The adapter row (None for the base model) and a finished run of it on the surface's suite."""
    from prefline.evals.suite import load_suite

    if target.isdigit():
        run = ledger.get_run(target)
        if run["status"] != "done":
            raise PreflineError(f"eval run {run['id']} did not finish (status: {run['status']}); re-run it before releasing it")
        suite = load_suite(config.suite)
        if run["suite_hash"] != suite.hash:
            raise PreflineError(f"eval run {run['id']} is on suite {run['suite_name']} {run['suite_hash'][:12]}, not on "
                                f"{surface}'s suite {suite.name} {suite.hash[:12]}; evaluate on that suite or promote the adapter by name")
        adapter = ledger.get_adapter(str(run["adapter_id"]), finished=False) if run["adapter_id"] is not None else None
        _not_live(surface, live, adapter)
        return adapter, run["id"]
    adapter = None if target == BASE else ledger.get_adapter(target)
    _not_live(surface, live, adapter)  # before evaluating: nothing to decide
    return adapter, evaluate(ledger, config, adapter, live, say)


def _not_live(surface: str, live: dict[str, Any] | None, adapter: dict[str, Any] | None) -> None:
    if live is not None and live["adapter_id"] == (adapter["id"] if adapter else None):
        raise PreflineError(f"{live['adapter_name']} is already live on {surface} "
                            f"(release {live['id']} since {live['created_at']:%Y-%m-%d %H:%M} UTC)")


def evaluate(ledger: Ledger, config: SurfaceConfig, adapter: dict[str, Any] | None, live: dict[str, Any] | None = None,
             say: Progress | None = None) -> int:
    """A fresh run of ``adapter`` (None: the base model) on the surface's suite; cached generations are reused."""
    from prefline.evals.run import run_eval
    from prefline.evals.suite import load_suite

    suite = load_suite(config.suite)
    if adapter is not None:
        model = adapter["base_model"]
    elif config.model is not None:
        model = config.model
    else:
        live_adapter = ledger.get_adapter(str(live["adapter_id"]), finished=False) if live and live["adapter_id"] else None
        model = live_adapter["base_model"] if live_adapter else None
    (say or (lambda _m: None))(f"evaluating {adapter['name'] if adapter else BASE} on suite {suite.name} ({len(suite.items)} items)")
    return run_eval(suite, ledger, model_spec=model, adapter=adapter["name"] if adapter else None,
                    decoding=config.decoding, show_progress=False)


def _comparable_live_run(ledger: Ledger, surface: str, config: SurfaceConfig, live: dict[str, Any], cand_run: int, say: Progress) -> int:
    """The live release's run, re-evaluated when the surface's suite changed since it went live."""
    if ledger.get_run(live["run_id"])["suite_hash"] == ledger.get_run(cand_run)["suite_hash"]:
        return live["run_id"]
    say(f"{surface}'s suite changed since release {live['id']}: re-evaluating the live {live['adapter_name']} on it")
    adapter = ledger.get_adapter(str(live["adapter_id"]), finished=False) if live["adapter_id"] is not None else None
    return evaluate(ledger, config, adapter, live, say)


def _gate(ledger: Ledger, baseline: int, candidate: int, policy: GatePolicy, reference_run: int | None = None):
    """The gate's decision, with the surface's reference run when the gate takes one and it is comparable."""
    from prefline.gate.compare import compare_runs

    kwargs: dict[str, Any] = {}
    if (reference_run is not None and reference_run not in (baseline, candidate)
            and "reference_run" in inspect.signature(compare_runs).parameters
            and ledger.get_run(reference_run)["suite_hash"] == ledger.get_run(candidate)["suite_hash"]):
        kwargs["reference_run"] = reference_run
    return compare_runs(ledger, baseline, candidate, policy, record=True, **kwargs)


# --- rollback --------------------------------------------------------------------------------


def live_stack(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The surface's releases that a rollback can return to, oldest first, the live one last.

    Replays the history: a promotion stacks a release; a rollback removes the live one and
    stands in for the release it restored; a pin changes nothing that is live.
    """
    stack: list[dict[str, Any]] = []
    for row in rows:
        if row["action"] == "promote":
            stack.append(row)
        elif row["action"] == "rollback":
            stack.pop()
            stack[-1] = row
    return stack


def rollback(ledger: Ledger, surface: str, *, surfaces: str | Path | None = None, reason: str | None = None,
             progress: Progress | None = None) -> RollbackResult:
    """Make the previously live adapter live again and confirm it behaves as it did when it was last live."""
    say = progress or (lambda _msg: None)
    config = get_surface(surface, surfaces)
    policy = load_policy(config.policy)
    rows = ledger.releases(surface)
    stack = live_stack(rows)
    if len(stack) < 2:
        what = f"only {stack[0]['adapter_name']} (release {stack[0]['id']}) was ever live" if stack else "nothing was ever released"
        raise PreflineError(f"nothing to roll back to on {surface}: {what}")
    latest, current, restored = rows[-1], stack[-1], stack[-2]
    adapter = ledger.get_adapter(str(restored["adapter_id"]), finished=False) if restored["adapter_id"] is not None else None
    new_run = evaluate(ledger, config, adapter, restored, say)
    recorded = restored["run_id"]
    gates, differences = [], []
    if ledger.get_run(recorded)["suite_hash"] != ledger.get_run(new_run)["suite_hash"]:
        confirmed = False
        message = (f"recovery NOT confirmed: {surface}'s suite changed since run {recorded} was recorded, "
                   f"so run {new_run} cannot be compared with it")
    else:
        say(f"comparing run {new_run} of {restored['adapter_name']} with run {recorded}, recorded when it was last live")
        # Both directions: a metric that moved either way beyond its margin means the restored
        # adapter does not behave as it did.
        for base, cand, direction in ((recorded, new_run, "worse"), (new_run, recorded, "better")):
            result = _gate(ledger, base, cand, policy)
            gates.append(result)
            # a hard limit (max_value, min_value) bounds a run, not a difference between two: left out
            differences += [{**asdict(c), "direction": direction, "decision_id": result.decision_id}
                            for c in result.checks if c.status == "fail" and getattr(c, "bound", "") not in ("max_value", "min_value")]
        confirmed = not differences
        message = (f"recovery confirmed: no gated metric of run {new_run} differs from run {recorded} beyond its margin"
                   if confirmed else
                   f"recovery NOT confirmed: {len(differences)} check(s) of run {new_run} differ from run {recorded} beyond their margin")
    release_id = ledger.add_release(
        surface=surface, seq=latest["seq"] + 1, action="rollback",
        adapter_id=restored["adapter_id"], adapter_name=restored["adapter_name"], run_id=new_run,
        decision_id=gates[0].decision_id if gates else None, reference_run_id=latest["reference_run_id"],
        suite_name=ledger.get_run(new_run)["suite_name"], suite_hash=ledger.get_run(new_run)["suite_hash"], policy=policy.name,
        forced=False, reason=reason, actor=_actor(),
        outcome={"confirmed": confirmed, "rolled_back": current["id"], "restored": restored["id"], "recorded_run": recorded,
                 "decisions": [g.decision_id for g in gates], "differences": differences, "note": message},
    )
    return RollbackResult(surface, ledger.get_release(release_id), current, restored, confirmed, differences, gates, message)


# --- pin, status, history --------------------------------------------------------------------


def pin_reference(ledger: Ledger, surface: str, run_id: int | str, *, reason: str | None = None) -> dict[str, Any]:
    """Make ``run_id`` the surface's reference run (the drift budget's anchor); what is live does not change."""
    current = ledger.latest_release(surface)
    if current is None:
        raise PreflineError(f"nothing was ever released on {surface}: its first release becomes its reference")
    run = ledger.get_run(run_id)
    if run["status"] != "done":
        raise PreflineError(f"eval run {run['id']} did not finish (status: {run['status']})")
    if run["suite_hash"] != current["suite_hash"]:
        raise PreflineError(f"eval run {run['id']} is on suite {run['suite_name']} {run['suite_hash'][:12]}, "
                            f"not on the suite of {surface}'s releases ({current['suite_name']} {current['suite_hash'][:12]})")
    release_id = ledger.add_release(
        **{k: current[k] for k in ("surface", "adapter_id", "adapter_name", "run_id", "suite_name", "suite_hash", "policy")},
        seq=current["seq"] + 1, action="pin", decision_id=None, reference_run_id=run["id"], forced=False, reason=reason,
        actor=_actor(), outcome={"previous_reference": current["reference_run_id"], "note": f"reference run is now {run['id']}"},
    )
    return ledger.get_release(release_id)


def status(ledger: Ledger, surfaces: str | Path | None = None) -> list[dict[str, Any]]:
    """Per surface (configured or released to): what is live, since when, by which decision, with its metrics."""
    configured = load_surfaces(surfaces)
    released = sorted({r["surface"] for r in ledger.releases()})
    out = []
    for name in list(configured) + [s for s in released if s not in configured]:
        rows = ledger.releases(name)
        if not rows:
            out.append({"surface": name, "live": None, "configured": name in configured,
                        "suite": configured[name].suite if name in configured else None,
                        "policy": configured[name].policy if name in configured else None})
            continue
        latest = rows[-1]
        became_live = next(r for r in reversed(rows) if r["action"] != "pin")
        out.append({"surface": name, "live": latest["adapter_name"], "release_id": became_live["id"], "since": became_live["created_at"],
                    "action": became_live["action"], "decision_id": became_live["decision_id"], "forced": became_live["forced"],
                    "reason": became_live["reason"], "run_id": latest["run_id"], "reference_run_id": latest["reference_run_id"],
                    "suite": latest["suite_name"], "policy": latest["policy"], "configured": name in configured,
                    "metrics": run_metrics(ledger, latest["run_id"])})
    return out


def history(ledger: Ledger, surface: str | None = None) -> list[dict[str, Any]]:
    """Every release row, oldest first per surface, with the gate's verdict and the run's overall metrics."""
    out = []
    for row in ledger.releases(surface):
        decision = ledger.get_gate_decision(row["decision_id"]) if row["decision_id"] else None
        out.append({**row, "verdict": decision["verdict"] if decision else None, "metrics": run_metrics(ledger, row["run_id"])})
    return out


def history_adapters(ledger: Ledger, surface: str, suite_hash: str | None = None) -> tuple[list[str], dict[str, int]]:
    """The adapters promoted on ``surface``, oldest first (each once, at its latest promotion), and the
    run recorded for each when it went live (only runs on ``suite_hash`` when given), for bisect."""
    order: dict[str, int] = {}
    for row in ledger.releases(surface):
        if row["action"] == "promote":
            order.pop(row["adapter_name"], None)
            order[row["adapter_name"]] = row["run_id"]
    if not order:
        raise PreflineError(f"nothing was ever promoted on {surface}: no history to bisect")
    runs = {name: run for name, run in order.items() if suite_hash is None or ledger.get_run(run)["suite_hash"] == suite_hash}
    return list(order), runs


def bisect_releases(ledger: Ledger, *, history_of: str | None = None, adapters: str | None = None, suite: str | None = None,
                    surface: str | None = None, metric: str | None = None, slice_name: str | None = None, alpha: float = 0.05,
                    surfaces: str | Path | None = None, progress: Progress | None = None):  # noqa: ANN201
    """Bisect the adapters promoted on ``history_of`` (their recorded runs reused), or the comma-separated
    ``adapters``, on ``suite`` (default: the surface's), with the surface's model and decoding when one is named."""
    from prefline.config import DecodingConfig
    from prefline.gate.bisect import bisect

    if bool(history_of) == bool(adapters):
        raise PreflineError("--bisect needs exactly one of --history SURFACE and --adapters A,B,C")
    if history_of and surface:
        raise PreflineError("--surface goes with --adapters; --history already names the surface")
    decoding, model, runs = DecodingConfig(), None, {}
    if history_of or surface:
        config = get_surface(history_of or surface, surfaces)
        suite, decoding, model = suite or config.suite, config.decoding, config.model
    if history_of:
        from prefline.evals.suite import load_suite

        names, runs = history_adapters(ledger, history_of, load_suite(suite).hash)
    else:
        if suite is None:
            raise PreflineError("--bisect --adapters needs --suite SUITE or --surface S")
        names = [a.strip() for a in adapters.split(",") if a.strip()]
    return bisect(ledger, names, suite, decoding=decoding, model=model, metric=metric, slice_name=slice_name,
                  good_run=runs.get(names[0]), bad_run=runs.get(names[-1]), alpha=alpha, progress=progress)


def run_metrics(ledger: Ledger, run_id: int) -> dict[str, float]:
    """A run's overall mean per metric."""
    summary = ledger.get_run(run_id).get("summary") or {}
    return {metric: by_slice["overall"]["mean"] for metric, by_slice in sorted(summary.items()) if "overall" in by_slice}


def _actor() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers; the release is still recorded
        return None


__all__ = ["BASE", "PromoteResult", "RollbackResult", "bisect_releases", "evaluate", "get_surface", "history", "history_adapters", "live_stack", "load_surfaces",
           "pin_reference", "promote", "rollback", "run_metrics", "status", "surfaces_path"]
