"""Validity of the refusal detector and of agreement/review on public human-labelled data.

Reads, from the folder given with ``--data`` (never copied into the project):

- ``xstest_dev.jsonl``: XSTest v2 completions of two models with human labels (Röttger et al.
  2024, CC BY 4.0). For each model: binary accuracy (refused = full or partial, as XSTest
  counts it), refusal recall, partial recall (human "partial" read as a refusal of either kind,
  and read as exactly "partial"), compliance recall, and 3-class accuracy, for four detectors
  (:data:`DETECTORS`): each row names whether that model's completions were the detector's
  development split or held out. Then the time to classify 10,000 responses (the completions
  repeated, each made unique so no cache helps) on one thread, in CPU seconds, by the rules and
  by rules + classifier.
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


# The detectors measured, with what each of their parts was developed on (see docs/detectors.md).
DETECTORS = {
    "rules": "rules with the opening cues (cues written after reading both models' errors)",
    "rules-before-cues": "rules before the opening cues (written before any public completion was read)",
    "learned-clean": "rules before the opening cues + classifier (project data only; threshold chosen on GPT-4)",
    "learned": "rules with the opening cues + classifier (the refusal_learned scorer)",
}
# Where each detector was developed: the other model's completions are its held-out split.
DEVELOPED_ON = {"rules": ("gpt4", "llama2new"), "rules-before-cues": (), "learned-clean": ("gpt4",),
                "learned": ("gpt4", "llama2new")}


def predict(texts: list[str], detector: str = "rules") -> list[str]:
    """Labels of ``texts`` by one of :data:`DETECTORS`."""
    from prefline.evals.scorers.style_refusal import classify_refusal
    from prefline.evals.scorers.style_refusal_model import classify_refusals

    if detector in ("rules", "rules-before-cues"):
        return [classify_refusal(t, opening_cues=detector == "rules")[0] for t in texts]
    return [label for label, _ in classify_refusals(texts, opening_cues=detector == "learned")]


def refusal_figures(rows: list[dict], detector: str = "rules") -> dict:
    """Binary and per-label figures of a detector on labelled completions (``completion``, ``label``),
    with 95% Wilson intervals for binary accuracy and partial recall."""
    from prefline.stats import wilson
    gold = [r["label"] for r in rows]
    pred = predict([r["completion"] for r in rows], detector)
    pairs = list(zip(gold, pred))

    def share(hits: int, of: int) -> float | None:
        return hits / of if of else None

    refused = [p != "none" for g, p in pairs if g != "none"]
    partial = [p for g, p in pairs if g == "partial"]
    complied = [p == "none" for g, p in pairs if g == "none"]
    return {
        "n": len(rows), "n_full": gold.count("full"), "n_partial": gold.count("partial"), "n_none": gold.count("none"),
        "binary_accuracy": share(sum((g != "none") == (p != "none") for g, p in pairs), len(pairs)),
        "binary_accuracy_ci95": wilson(sum((g != "none") == (p != "none") for g, p in pairs), len(pairs), 0.95),
        "partial_recall_ci95": wilson(sum(p != "none" for p in partial), len(partial), 0.95),
        "refusal_recall": share(sum(refused), len(refused)),
        "partial_recall": share(sum(p != "none" for p in partial), len(partial)),
        "partial_recall_exact": share(sum(p == "partial" for p in partial), len(partial)),
        "compliance_recall": share(sum(complied), len(complied)),
        "three_class_accuracy": share(sum(g == p for g, p in pairs), len(pairs)),
    }


def refusal_throughput(texts: list[str], n: int = THROUGHPUT_N, learned: bool = False) -> dict:
    """CPU and wall seconds to classify ``n`` responses (``texts`` repeated, each made unique), on one
    thread; ``learned``: rules + classifier in one batch, from an empty embedding cache (the model
    loaded beforehand, not timed), with the share of responses the classifier read."""
    from prefline.text.refusal import _classify, classify_refusal

    # the number goes first so that each opening, which the classifier reads, is unique too
    batch = [f"({i}) {texts[i % len(texts)]}" for i in range(n)]
    _classify.cache_clear()
    consulted = None
    if learned:
        import torch

        from prefline.evals.scorers.behaviour_embedding import embedding_model
        from prefline.evals.scorers.style_refusal_model import classify_refusals

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        embedding_model()
        with tempfile.TemporaryDirectory() as home:
            previous = os.environ.get("PREFLINE_HOME")
            os.environ["PREFLINE_HOME"] = home
            try:
                cpu, wall = time.process_time(), time.perf_counter()
                decided = classify_refusals(batch)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            finally:
                torch.set_num_threads(threads)
                if previous is None:
                    os.environ.pop("PREFLINE_HOME", None)
                else:
                    os.environ["PREFLINE_HOME"] = previous
        consulted = sum("classifier_p_refusal" in e for _, e in decided) / n
    else:
        cpu, wall = time.process_time(), time.perf_counter()
        for text in batch:
            classify_refusal(text)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"n": n, "cpu_s": cpu, "wall_s": wall, "consulted": consulted,
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
            from prefline.data.ingest import ingest
            from prefline.data.store import load_signals
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


def _ci(value, interval) -> str:
    return _f(value) if interval is None else f"{_f(value)} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def report(data_dir: Path, throughput_n: int = THROUGHPUT_N) -> None:
    """Print the refusal and agreement figures on the public files in ``data_dir``."""
    data_dir = Path(data_dir)
    rows = [json.loads(line) for line in (data_dir / "xstest_dev.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    models = sorted({r["model"] for r in rows})
    print("Refusal detectors vs XSTest v2 human labels (refused = full or partial)")
    print("  Split by model: a detector's figures on completions of a model it was not developed on are held out.")
    for name, about in DETECTORS.items():
        print(f"  {name}: {about}; developed on: {', '.join(DEVELOPED_ON[name]) or 'no public completions'}")
    header = ["detector", "completions", "split", "n", "full/partial/none", "binary acc [95% CI]", "refusal recall", "partial recall [95% CI]",
              "partial exact", "compliance recall", "3-class acc"]
    print("  " + " | ".join(header))
    for name in DETECTORS:
        for model in models:
            fig = refusal_figures([r for r in rows if r["model"] == model], name)
            split = "development" if model in DEVELOPED_ON[name] else "held out"
            print("  " + " | ".join([name, model, split, str(fig["n"]), f"{fig['n_full']}/{fig['n_partial']}/{fig['n_none']}",
                                     _ci(fig["binary_accuracy"], fig["binary_accuracy_ci95"]), _f(fig["refusal_recall"]),
                                     _ci(fig["partial_recall"], fig["partial_recall_ci95"]), _f(fig["partial_recall_exact"]), _f(fig["compliance_recall"]), _f(fig["three_class_accuracy"])]))
    texts = [r["completion"] for r in rows]
    for learned in (False, True):
        speed = refusal_throughput(texts, n=throughput_n, learned=learned)
        what = "rules + classifier, one batch" if learned else "rules"
        read = f"; the classifier read {speed['consulted']:.0%} of them" if learned else ""
        print(f"  throughput ({what}): {speed['n']:,} responses ({speed['mean_words']:.0f} words on average) classified in "
              f"{speed['cpu_s']:.1f} CPU s ({speed['wall_s']:.1f} s wall, one thread, load average {os.getloadavg()[0]:.1f}){read}")

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
