"""Consensus: the signals about one (prompt, response A, response B) -> one label with a confidence.

Signals are grouped by their ``key`` (order-independent: "A over B" and "B under A" are one group).
Each group gets a label (``a``, ``b``; a ``tie`` or an undecided group makes no pair) and a
confidence in [0, 1] that becomes the stored pair's ``weight``:

- ``majority``: the label with the largest summed signal confidence wins (equal sums: no consensus);
  confidence = (summed confidence of the winning label's signals) / (number of signals). Three votes
  split 2:1 give 2/3; one implicit-feedback signal of confidence 0.7 gives 0.7.
- ``dawid-skene``: annotator reliability learnt by EM over the whole dataset (crowd-kit's
  ``DawidSkene`` algorithm, on integer arrays: :func:`dawid_skene_em`); confidence = the posterior of the winning label x the mean signal confidence.
- ``none``: no combining: every signal is its own pair (plain pair files, as before).

Who an annotator is: the signal's ``annotator``, or, when it has none, its ``kind:rule`` (so each
implicit rule is treated as one annotator whose reliability Dawid-Skene can learn).

An expert review settles a group: when a group holds ``review`` signals, only they count (majority
among reviewers; confidence = the share of reviewers who agree).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from prefline.data.schema import Pair, Signal
from prefline.errors import PreflineError

METHODS = ("majority", "dawid-skene", "none")
_RELATIVE = {"a": "chosen", "b": "rejected", "tie": "tie"}


def worker_of(signal: Signal) -> str:
    return signal.annotator or f"{signal.kind}:{signal.rule}"


@dataclass
class Outcome:
    """One group's consensus. ``label`` None means no pair; ``category``/``reason`` say why."""

    key: str
    signals: list[Signal]
    label: str | None
    confidence: float
    method: str
    category: str | None = None
    reason: str | None = None
    axes: dict[str, str] = field(default_factory=dict)

    @property
    def votes(self) -> Counter:
        return Counter(s.label for s in self.signals)

    @property
    def disagreement(self) -> float:
        """Share of the signals that do not vote for the most common label."""
        counts = self.votes
        return 1.0 - max(counts.values()) / len(self.signals) if self.signals else 0.0


def _decide(weights: dict[str, float]) -> tuple[str | None, float]:
    ranked = sorted(weights.items(), key=lambda kv: -kv[1])
    if len(ranked) > 1 and abs(ranked[0][1] - ranked[1][1]) < 1e-12:
        return None, ranked[0][1]
    return ranked[0]


def _finish(key: str, signals: list[Signal], label: str | None, confidence: float, method: str) -> Outcome:
    outcome = Outcome(key, signals, label, round(min(max(confidence, 0.0), 1.0), 6), method, axes=axis_consensus(signals))
    if label is None:
        outcome.category, outcome.reason = "no-consensus", f"no consensus ({_tally(signals)})"
    elif label == "tie":
        outcome.label, outcome.category, outcome.reason = None, "consensus-tie", f"the consensus is a tie ({_tally(signals)})"
    return outcome


def _tally(signals: list[Signal]) -> str:
    counts = Counter(s.label for s in signals)
    return ", ".join(f"{label} {counts[label]}" for label in ("a", "b", "tie") if counts[label])


def axis_consensus(signals: list[Signal]) -> dict[str, str]:
    """Per axis, the strict majority of the signals' axis choices (axes without one are left out)."""
    by_axis: dict[str, Counter] = defaultdict(Counter)
    for signal in signals:
        for axis, label in signal.axes.items():
            by_axis[axis][label] += 1
    result = {}
    for axis, counts in sorted(by_axis.items()):
        (top, n), *rest = counts.most_common()
        if not rest or rest[0][1] < n:
            result[axis] = top
    return result


def _reviewed(key: str, signals: list[Signal]) -> Outcome | None:
    reviews = [s for s in signals if s.kind == "review"]
    if not reviews:
        return None
    label, share = _decide(Counter(s.label for s in reviews))
    outcome = _finish(key, signals, label, share / len(reviews), "review")
    return outcome


def majority(groups: dict[str, list[Signal]]) -> dict[str, Outcome]:
    outcomes = {}
    for key, signals in groups.items():
        outcome = _reviewed(key, signals)
        if outcome is None:
            weights: dict[str, float] = defaultdict(float)
            for signal in signals:
                weights[signal.label] += signal.confidence
            label, weight = _decide(weights)
            outcome = _finish(key, signals, label, weight / len(signals), "majority")
        outcomes[key] = outcome
    return outcomes


_EPS = 1e-10  # crowd-kit's floor for probabilities before a logarithm


def dawid_skene_em(task, worker, label, n_tasks: int, n_workers: int, n_labels: int,
                   n_iter: int = 100, tol: float = 1e-5):
    """Dawid-Skene EM over integer vote arrays -> each task's posterior over labels (n_tasks x n_labels).

    ``task``, ``worker`` and ``label`` hold one vote each (indices). The algorithm is crowd-kit's
    ``DawidSkene`` (1.4), step for step, on arrays instead of data frames: start from majority-vote
    shares; the priors are the mean posterior; an M-step gives each worker's confusion matrix (for the
    labels that worker used, floored at 1e-10 and normalized over them); an E-step gives the posteriors
    from the priors and every vote's confusion row, in log2 space shifted per task; stop after
    ``n_iter`` rounds or when the evidence lower bound per vote gains less than ``tol``. The posteriors
    returned are floored at 1e-10, as crowd-kit's are.
    """
    import numpy as np

    task, worker, label = (np.asarray(x, dtype=np.int64) for x in (task, worker, label))
    probas = np.bincount(task * n_labels + label, minlength=n_tasks * n_labels).reshape(n_tasks, n_labels).astype(float)
    probas /= probas.sum(axis=1, keepdims=True)
    cell = worker * n_labels + label                      # (worker, observed label) of each vote
    used = np.bincount(cell, minlength=n_workers * n_labels) > 0

    def m_step(probas):
        errors = np.stack([np.bincount(cell, weights=probas[task, c], minlength=n_workers * n_labels)
                           for c in range(n_labels)], axis=1)  # (worker*label, true label)
        errors[used] = np.maximum(errors[used], _EPS)
        errors = errors.reshape(n_workers, n_labels, n_labels)
        errors /= errors.sum(axis=1, keepdims=True)
        return errors.reshape(n_workers * n_labels, n_labels)

    def e_step(priors, errors):
        with np.errstate(divide="ignore"):
            logs = np.log2(errors[cell])
        likelihood = np.log2(np.maximum(priors, _EPS)) + np.stack(
            [np.bincount(task, weights=logs[:, c], minlength=n_tasks) for c in range(n_labels)], axis=1)
        scaled = np.exp2(likelihood - likelihood.max(axis=1, keepdims=True))
        return scaled / scaled.sum(axis=1, keepdims=True)

    def lower_bound(probas, priors, errors):
        with np.errstate(divide="ignore"):
            joint = (probas[task] * (np.log(errors[cell]) + np.log(np.maximum(priors, _EPS)))).sum()
        floored = np.maximum(probas, _EPS)
        return float(joint - (np.log(floored) * floored).sum()), floored

    priors = probas.mean(axis=0)
    errors = m_step(probas)
    loss = -np.inf
    for _ in range(n_iter):
        probas = e_step(priors, errors)
        priors = probas.mean(axis=0)
        errors = m_step(probas)
        new_loss, probas = lower_bound(probas, priors, errors)
        if new_loss / len(task) - loss < tol:
            break
        loss = new_loss / len(task)
    return probas


def dawid_skene_posteriors(votes: list[tuple[str, str, str]], n_iter: int = 100, tol: float = 1e-5) -> dict[str, dict[str, float]]:
    """(task, worker, label) votes -> each task's posterior over the labels used, by :func:`dawid_skene_em`."""
    if not votes:
        return {}
    import numpy as np

    # tasks numbered in order of first appearance and labels sorted: the order in which the EM adds
    # up its terms, the same as ingest's out-of-core path uses
    tasks, workers = {}, {}
    labels = sorted({label for _, _, label in votes})
    label_index = {name: i for i, name in enumerate(labels)}
    task = np.array([tasks.setdefault(t, len(tasks)) for t, _, _ in votes])
    worker = np.array([workers.setdefault(w, len(workers)) for _, w, _ in votes])
    label = np.array([label_index[name] for _, _, name in votes])
    probas = dawid_skene_em(task, worker, label, len(tasks), len(workers), len(labels), n_iter, tol)
    return {str(t): {str(name): float(p) for name, p in zip(labels, row)} for t, row in zip(tasks, probas)}


def dawid_skene(groups: dict[str, list[Signal]], n_iter: int = 100) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    votes = []
    for key, signals in groups.items():
        reviewed = _reviewed(key, signals)
        if reviewed is not None:
            outcomes[key] = reviewed
        else:
            votes.extend((key, worker_of(s), s.label) for s in signals)
    posteriors = dawid_skene_posteriors(votes, n_iter=n_iter)
    for key, signals in groups.items():
        if key not in outcomes:
            outcomes[key] = dawid_skene_outcome(key, signals, posteriors[key])
    return outcomes


def dawid_skene_outcome(key: str, signals: list[Signal], posterior: dict[str, float]) -> Outcome:
    """A group's outcome from its Dawid-Skene posterior: the most probable label, confidence = its
    posterior x the mean signal confidence."""
    label, p = _decide(posterior)
    mean_confidence = sum(s.confidence for s in signals) / len(signals)
    return _finish(key, signals, label, p * mean_confidence, "dawid-skene")


def reviewed(key: str, signals: list[Signal]) -> Outcome | None:
    """The outcome an expert review settles, or None when the group holds no ``review`` signal."""
    return _reviewed(key, signals)


def combine(groups: dict[str, list[Signal]], method: str) -> dict[str, Outcome]:
    """Every group's outcome under ``method`` (majority or dawid-skene)."""
    if method == "majority":
        return majority(groups)
    if method == "dawid-skene":
        return dawid_skene(groups)
    raise PreflineError(f"unknown consensus method {method!r}; known: {', '.join(METHODS)}")


def single(key: str, signal: Signal) -> Outcome:
    """``none``: one signal, taken as it is."""
    return _finish(key, [signal], signal.label, signal.confidence, "none")


# --- outcome -> stored pair ------------------------------------------------------------------


def _relative(label: str, outcome_label: str) -> str:
    """A vote as seen from the stored pair: for its chosen response, its rejected one, or a tie."""
    if outcome_label == "a":
        return _RELATIVE[label]
    return {"a": "rejected", "b": "chosen", "tie": "tie"}[label]


def pair_row(outcome: Outcome) -> Pair:
    """The stored pair of a group that made one: its head's messages, its signals' tags and sources, and how consensus made it."""
    signals, label = outcome.signals, outcome.label
    first = signals[0]
    chosen, rejected = (first.a, first.b) if label == "a" else (first.b, first.a)
    slices: dict[str, str] = {}
    for signal in signals:
        for k, v in signal.slices.items():
            slices.setdefault(k, v)
    sources = sorted({s.source for s in signals if s.source})
    return Pair(
        id=first.pair_ids[label],
        prompt=first.prompt, chosen=chosen, rejected=rejected,
        slices=slices, source=",".join(sources), weight=outcome.confidence,
        confidence=outcome.confidence, consensus=outcome.method,
        rule=",".join(sorted({s.rule for s in signals})), n_signals=len(signals),
        axes={axis: _relative(choice, label) for axis, choice in outcome.axes.items()},
        signals=[{"kind": s.kind, "rule": s.rule, "source": s.source, "annotator": s.annotator,
                  "label": _relative(s.label, label), "confidence": s.confidence, "rationale": s.rationale,
                  "axes": {axis: _relative(c, label) for axis, c in s.axes.items()}, "lines": s.lines,
                  **({"extra": s.meta["extra"]} if s.meta.get("extra") else {})}
                 for s in signals],
        key=outcome.key,
    )
