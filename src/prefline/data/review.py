"""The expert review queue: high-disagreement pairs out to a file, reviewers' decisions back in.

``export_review`` writes every signal group of a dataset version that has at least two signals and
either no consensus or a disagreement of at least ``min_disagreement`` (the share of signals not
voting for the most common label; 2 votes against 1 is 0.333, so the default 0.33 queues it). A
consensus tie is a consensus: when everyone said "tie" nobody disagrees, and the group is not queued. Each row
holds the prompt, both responses, the current consensus, every vote with its rationale, and empty
``decision`` / ``reviewer`` / ``rationale`` fields for the reviewer.

``import_review`` reads the file back: each row with a ``decision`` (``a``, ``b`` or ``tie``) becomes a
``review`` signal (source ``review:FILE``, annotator = the reviewer). They join the base version's
signals, the consensus runs again (a review settles its group, see ``consensus``), and the result
is stored as a new dataset version, with the usual accounting over the review file's rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prefline.data import consensus as consensus_mod
from prefline.data.schema import RowError, Signal, optional_text, prompt_messages, reply_messages
from prefline.data.signals import Fate, KindContext, choice, per_record, signal_kind
from prefline.data.sources import RawRecord, reader_for
from prefline.errors import PreflineError
from prefline.hashing import file_hash
from prefline.ledger import Ledger
from prefline.paths import input_file, output_file

CSV_COLUMNS = ["review_id", "dataset", "prompt", "response_a", "response_b", "consensus_label", "consensus_confidence",
               "disagreement", "votes", "decision", "reviewer", "rationale"]


def _method(dataset: dict[str, Any]) -> str:
    # a dataset that was not combined (a plain pair file) is grouped by majority for review
    method = (dataset.get("meta") or {}).get("consensus", "none")
    return "majority" if method == "none" else method


def _groups(signals: list[Signal]) -> dict[str, list[Signal]]:
    groups: dict[str, list[Signal]] = {}
    for signal in signals:
        if not signal.excluded:
            groups.setdefault(signal.key, []).append(signal)
    return groups


def review_queue(dataset: dict[str, Any], signals: list[Signal], min_disagreement: float = 0.33) -> list[dict[str, Any]]:
    """The review rows of a dataset version, most disputed first."""
    outcomes = consensus_mod.combine(_groups(signals), _method(dataset))
    ref = f"{dataset['name']}@{dataset['version']}"
    rows = []
    for outcome in outcomes.values():
        if len(outcome.signals) < 2 or (outcome.category != "no-consensus" and outcome.disagreement < min_disagreement):
            continue
        first = outcome.signals[0]
        slices: dict[str, str] = {}
        for s in outcome.signals:
            for k, v in s.slices.items():
                slices.setdefault(k, v)
        rows.append({
            "review_id": outcome.key, "dataset": ref, "prompt": first.prompt, "response_a": first.a, "response_b": first.b,
            "slices": slices,
            "consensus": {"label": outcome.label, "confidence": outcome.confidence if outcome.label else None,
                          "method": outcome.method, "reason": outcome.reason},
            "disagreement": round(outcome.disagreement, 6),
            "votes": [{"annotator": s.annotator, "label": s.label, "kind": s.kind, "rule": s.rule, "source": s.source,
                       "confidence": s.confidence, "rationale": s.rationale, "axes": s.axes} for s in outcome.signals],
            "decision": None, "reviewer": None, "rationale": None,
        })
    rows.sort(key=lambda r: (-r["disagreement"], r["consensus"]["label"] is not None, r["review_id"]))
    return rows


def _cell_text(messages: list[dict[str, str]]) -> str:
    """One message as its plain text; a conversation as JSON (which the CSV reader reads back)."""
    if len(messages) == 1:
        return messages[0]["content"]
    return json.dumps(messages, ensure_ascii=False)


def export_review(dataset_ref: str, out: str | Path, ledger: Ledger, min_disagreement: float = 0.33) -> dict[str, Any]:
    """Write the review queue of a dataset version to ``out`` (.jsonl or .csv); return a summary."""
    from prefline.data.store import load_signals

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise PreflineError(f"{out}: the review file must end in .jsonl or .csv")
    dataset = ledger.get_dataset(dataset_ref)
    rows = review_queue(dataset, load_signals(dataset), min_disagreement)
    output_file(out)
    if suffix == ".jsonl":
        with open(out, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        with open(out, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({
                    "review_id": row["review_id"], "dataset": row["dataset"], "prompt": _cell_text(row["prompt"]),
                    "response_a": _cell_text(row["response_a"]), "response_b": _cell_text(row["response_b"]),
                    "consensus_label": row["consensus"]["label"] or "", "consensus_confidence": row["consensus"]["confidence"] or "",
                    "disagreement": row["disagreement"], "votes": json.dumps(row["votes"], ensure_ascii=False),
                    "decision": "", "reviewer": "", "rationale": "",
                })
    return {"dataset": f"{dataset['name']}@{dataset['version']}", "path": str(out), "n_items": len(rows),
            "min_disagreement": min_disagreement}


# --- decisions back in -----------------------------------------------------------------------


@signal_kind("review", unused_reason="no decision in this review row", one_per_record=True)
def read_review(records: Iterable[RawRecord], ctx: KindContext) -> Iterator[Signal | Fate]:
    """Review rows with a ``decision`` -> ``review`` signals; rows without one are excluded (not yet reviewed)."""

    def parse(row: Any, ctx: KindContext, line: int) -> Signal | Fate:
        if not isinstance(row, dict):
            raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
        missing = [name for name in ("prompt", "response_a", "response_b") if name not in row]
        if missing:
            raise RowError(f"missing field(s): {', '.join(map(repr, missing))}")
        prompt = prompt_messages(row["prompt"])
        a, b = reply_messages(row["response_a"], "response_a"), reply_messages(row["response_b"], "response_b")
        if row.get("decision") in (None, ""):
            return Fate(line, "excluded", "no-decision", "no decision yet (the 'decision' field is empty)")
        signal = Signal(prompt=prompt, a=a, b=b, label=choice(row["decision"], "decision"), kind="review", rule="expert_review",
                        source=ctx.source, annotator=optional_text(row, "reviewer"), rationale=optional_text(row, "rationale"),
                        lines=[line])
        review_id = optional_text(row, "review_id")
        if review_id is not None and review_id != signal.key:
            raise RowError("'review_id' does not match the prompt and responses (were they edited?)")
        return signal

    yield from per_record(records, ctx, parse)


def _base_ref(path: Path, read, options) -> str | None:
    refs = {ref for record in read(path, options) if record.error is None and isinstance(record.row, dict)
            and (ref := optional_text(record.row, "dataset"))}
    if len(refs) > 1:
        raise PreflineError(f"{path}: rows come from several datasets ({', '.join(sorted(refs))}); import one export at a time")
    return refs.pop() if refs else None


def import_review(path: str | Path, into: str, ledger: Ledger, base: str | None = None):
    """Decisions in a review file + the base version's signals -> a new version of ``into``."""
    from prefline.data.ingest import assemble, commit, write_assembly
    from prefline.data.store import VersionWriter, check_name, load_signals
    from prefline.data.signals import IngestRules

    path = Path(path)
    check_name(into)
    input_file(path, "review file")
    read = reader_for(path)
    rules = IngestRules()
    base_ref = base or _base_ref(path, read, rules.read_options()) or into
    dataset = ledger.get_dataset(base_ref)
    carried = load_signals(dataset)
    method = _method(dataset)
    ctx = KindContext(source=f"review:{path.name}", rules=rules)
    built = assemble(read(path, rules.read_options()), "review", ctx, method, carried=carried)
    with VersionWriter(into, path) as out:
        write_assembly(out, built, lambda: read(path, rules.read_options()))
        return commit(out, ledger, ctx, kind="review", method=method, rules=rules,
                          meta={"format": path.suffix.lstrip("."), "base": f"{dataset['name']}@{dataset['version']}", "base_id": dataset["id"]},
                          source_file=str(path.resolve()), source_hash=file_hash(path))
