"""Validity of the refusal detector and of agreement/review on public human-labelled data.

Reads, from the folder given with ``--data`` (never copied into the project):

- ``xstest_dev.jsonl``: XSTest v2 completions of two models with human labels (Röttger et al.
  2024, CC BY 4.0). For each model: binary accuracy (refused = full or partial, as XSTest
  counts it), refusal recall, partial recall (human "partial" read as a refusal of either kind,
  and read as exactly "partial"), compliance recall, and 3-class accuracy. Each model's
  completions are a held-out split for the other's: the figures are reported per model.
  Then the time to classify 10,000 responses (the completions repeated, each made unique so no
  cache helps) on one core, in CPU seconds.
- ``pandalm_testset.json``: PandaLM's test set (Wang et al. 2023, Apache-2.0), three
  annotators per item, ingested as ``pairwise`` votes with majority consensus into a temporary
  ledger: records read and ingested, items with an empty response, Krippendorff's alpha from
  ``prefline data agreement`` beside the ``krippendorff`` package on the same votes as the file
  gives them, and how many unanimous ties reach the review queue (none should).

    .venv/bin/python benchmarks/validity_refusal.py --data ../shared/validation
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

THROUGHPUT_N = 10_000


def refusal_figures(rows: list[dict]) -> dict:
    """Binary and per-label figures of the detector on labelled completions (``completion``, ``label``)."""
    from prefline.evals.scorers.style_refusal import classify_refusal

    gold = [r["label"] for r in rows]
    pred = [classify_refusal(r["completion"])[0] for r in rows]
    pairs = list(zip(gold, pred))

    def share(hits: int, of: int) -> float | None:
        return hits / of if of else None

    refused = [p != "none" for g, p in pairs if g != "none"]
    partial = [p for g, p in pairs if g == "partial"]
    complied = [p == "none" for g, p in pairs if g == "none"]
    return {
        "n": len(rows), "n_full": gold.count("full"), "n_partial": gold.count("partial"), "n_none": gold.count("none"),
        "binary_accuracy": share(sum((g != "none") == (p != "none") for g, p in pairs), len(pairs)),
        "refusal_recall": share(sum(refused), len(refused)),
        "partial_recall": share(sum(p != "none" for p in partial), len(partial)),
        "partial_recall_exact": share(sum(p == "partial" for p in partial), len(partial)),
        "compliance_recall": share(sum(complied), len(complied)),
        "three_class_accuracy": share(sum(g == p for g, p in pairs), len(pairs)),
    }


def refusal_throughput(texts: list[str], n: int = THROUGHPUT_N) -> dict:
    """CPU and wall seconds to classify ``n`` responses (``texts`` repeated, each made unique)."""
    from prefline.evals.scorers.style_refusal import _classify, classify_refusal

    batch = [f"{texts[i % len(texts)]}\n\n({i})" for i in range(n)]
    _classify.cache_clear()
    cpu, wall = time.process_time(), time.perf_counter()
    for text in batch:
        classify_refusal(text)
    return {"n": n, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
            "mean_words": sum(len(t.split()) for t in batch) / n}


def agreement_figures(path: Path) -> dict:
    """Ingest PandaLM's votes into a temporary ledger; agreement and the review queue on them."""
    import krippendorff
    import numpy as np

    records = json.loads(path.read_text(encoding="utf-8"))
    labels = {0: "tie", 1: "a", 2: "b"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        previous = os.environ.get("PREFLINE_HOME")
        os.environ["PREFLINE_HOME"] = str(tmp / "home")
        try:
            from prefline.data.agreement import agreement_report
            from prefline.data.ingest import ingest, load_signals
            from prefline.data.review import review_queue
            from prefline.ledger import Ledger

            votes_file = tmp / "pandalm_votes.jsonl"
            non_text = 0
            with open(votes_file, "w", encoding="utf-8") as out:
                for r in records:
                    prompt = r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "")
                    # a few responses are JSON true rather than text: kept as the text "True"
                    a, b = (v if isinstance(v, str) else str(v) for v in (r["response1"], r["response2"]))
                    non_text += not (isinstance(r["response1"], str) and isinstance(r["response2"], str))
                    for k in (1, 2, 3):
                        out.write(json.dumps({"prompt": prompt, "response_a": a, "response_b": b,
                                              "choice": labels[r[f"annotator{k}"]], "annotator": f"annotator{k}"}) + "\n")
            ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
            result = ingest(votes_file, "pandalm", ledger, signal="pairwise", consensus="majority", workers=1)
            dataset = ledger.get_dataset("pandalm")
            signals = load_signals(dataset)
            report = agreement_report(signals)
            queue = review_queue(dataset, signals)
        finally:
            if previous is None:
                os.environ.pop("PREFLINE_HOME", None)
            else:
                os.environ["PREFLINE_HOME"] = previous

    by_item: dict[str, list] = {}
    for s in signals:
        by_item.setdefault(s.key, []).append(s)
    empty_items = sum(any(not m["content"].strip() for s in group[:1] for m in s.a + s.b) for group in by_item.values())
    unanimous_ties = {k for k, group in by_item.items() if len(group) >= 2 and all(s.label == "tie" for s in group)}
    queued_ties = sum(row["review_id"] in unanimous_ties for row in queue)
    # The same items with the labels as the file gives them (first record of each item):
    # prefline orders each item's two responses by content hash, so its "a" may be the file's second.
    seen: dict[tuple, list] = {}
    for r in records:
        prompt = r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "")
        a, b = str(r["response1"]), str(r["response2"])
        if prompt.strip() and a != b:  # an item is its prompt and its two responses, in either order
            seen.setdefault((prompt, frozenset((a, b))), [r[f"annotator{k}"] for k in (1, 2, 3)])
    ingested_items = list(seen.values())
    raw_alpha = krippendorff.alpha(reliability_data=np.array(ingested_items, dtype=float).T, level_of_measurement="nominal")
    overall = report["overall"]
    return {
        "records": len(records), "votes_read": result.n_read, "votes_accepted": result.n_accepted,
        "votes_rejected": result.n_rejected, "votes_duplicate": result.n_duplicates, "excluded": result.excluded,
        "items": overall["n_items"], "items_with_empty_response": empty_items, "items_with_non_text_response": non_text,
        "alpha": overall["alpha"], "alpha_file_orientation": round(float(raw_alpha), 6), "items_file_orientation": len(ingested_items),
        "percent_agreement": overall["percent_agreement"], "votes_counted": overall["n_votes"],
        "unanimous_ties": len(unanimous_ties), "unanimous_ties_queued": queued_ties, "queued": len(queue),
        "pairs": result.n_pairs,
    }


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def report(data_dir: Path) -> None:
    """Print the refusal and agreement figures on the public files in ``data_dir``."""
    data_dir = Path(data_dir)
    rows = [json.loads(line) for line in (data_dir / "xstest_dev.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    models = sorted({r["model"] for r in rows})
    print("Refusal detector vs XSTest v2 human labels (refused = full or partial)")
    print("  Each model's completions are held out from the other's; figures per model.")
    header = ["completions", "n", "full/partial/none", "binary acc", "refusal recall", "partial recall", "partial exact", "compliance recall", "3-class acc"]
    print("  " + " | ".join(header))
    for model in models:
        fig = refusal_figures([r for r in rows if r["model"] == model])
        print("  " + " | ".join([model, str(fig["n"]), f"{fig['n_full']}/{fig['n_partial']}/{fig['n_none']}",
                                 _f(fig["binary_accuracy"]), _f(fig["refusal_recall"]), _f(fig["partial_recall"]),
                                 _f(fig["partial_recall_exact"]), _f(fig["compliance_recall"]), _f(fig["three_class_accuracy"])]))
    fig = refusal_figures(rows)
    print(f"  both: binary acc {_f(fig['binary_accuracy'])}, partial recall {_f(fig['partial_recall'])} (n={fig['n']})")
    speed = refusal_throughput([r["completion"] for r in rows])
    print(f"  throughput: {speed['n']:,} responses ({speed['mean_words']:.0f} words on average) classified in "
          f"{speed['cpu_s']:.1f} CPU s ({speed['wall_s']:.1f} s wall, one core, load average {os.getloadavg()[0]:.1f})")

    panda = data_dir / "pandalm_testset.json"
    if not panda.is_file():
        print(f"\n(no {panda.name} in {data_dir}: agreement figures skipped)")
        return
    fig = agreement_figures(panda)
    print("\nAgreement and review on the PandaLM test set (3 annotators, pairwise, majority consensus)")
    print(f"  records {fig['records']}, votes read {fig['votes_read']}: accepted {fig['votes_accepted']}, "
          f"exact duplicate rows {fig['votes_duplicate']}, rejected {fig['votes_rejected']}")
    print(f"  items ingested {fig['items']} (of them with an empty response: {fig['items_with_empty_response']}; "
          f"records whose response is JSON true, kept as text: {fig['items_with_non_text_response']})")
    print(f"  votes counted by agreement {fig['votes_counted']}; Krippendorff's alpha {_f(fig['alpha'])} "
          f"(responses in prefline's order); {_f(fig['alpha_file_orientation'])} with the file's order of responses "
          f"({fig['items_file_orientation']} items, krippendorff package); percent agreement {_f(fig['percent_agreement'])}")
    print(f"  unanimous ties {fig['unanimous_ties']}, queued for review {fig['unanimous_ties_queued']}; "
          f"review queue {fig['queued']} items; pairs made {fig['pairs']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with xstest_dev.jsonl and pandalm_testset.json")
    args = parser.parse_args()
    if not (args.data / "xstest_dev.jsonl").is_file():
        parser.error(f"{args.data}: no xstest_dev.jsonl there")
    report(args.data)


if __name__ == "__main__":
    main()
