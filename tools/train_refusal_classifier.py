"""Train the refusal classifier's weights (``src/prefline/resources/refusal_classifier.json``).

A 3-class (full/partial/none) logistic regression on the all-MiniLM-L6-v2 embedding of each
response's opening (``prefline.evals.scorers.style_refusal_model.opening_vectors``), trained on the
project's own labelled responses only: ``tests/data/validation/refusal.jsonl`` (the rules'
development set) and ``refusal_long.jsonl`` (longer responses of the kinds public models write).
``refusal_heldout.jsonl`` is not trained on: its figures are printed as the held-out check.
No public data is read. Deterministic: the same files give the same weights (L-BFGS, fixed order).

    .venv/bin/python tools/train_refusal_classifier.py            # write the weights, print figures
    .venv/bin/python tools/train_refusal_classifier.py --check    # fail if the shipped weights differ
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = ROOT / "tests" / "data" / "validation"
TRAIN_FILES = ("refusal.jsonl", "refusal_long.jsonl")
HELDOUT_FILE = "refusal_heldout.jsonl"
OUT = ROOT / "src" / "prefline" / "resources" / "refusal_classifier.json"
C = 4.0  # inverse L2 strength, fixed before any measurement (not tuned)
CLASSES = ["full", "partial", "none"]


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (VALIDATION / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def train() -> dict:
    from prefline.evals.scorers.style_refusal_model import OPENING_TOKENS, opening_vectors

    rows = [r for name in TRAIN_FILES for r in load(name)]
    x = opening_vectors([r["text"] for r in rows]).astype(np.float64)
    y = np.array([CLASSES.index(r["label"]) for r in rows])
    model = LogisticRegression(C=C, max_iter=5000, tol=1e-8).fit(x, y)
    assert list(model.classes_) == [0, 1, 2]
    return {
        "about": "3-class logistic regression on the all-MiniLM-L6-v2 embedding of a response's opening; "
                 "written by tools/train_refusal_classifier.py from the project's own labelled responses",
        "embedding": "all-MiniLM-L6-v2", "opening_tokens": OPENING_TOKENS, "classes": CLASSES, "C": C,
        "trained_on": {name: hashlib.sha256((VALIDATION / name).read_bytes()).hexdigest() for name in TRAIN_FILES},
        "n_train": len(rows),
        "coef": [[round(float(v), 6) for v in row] for row in model.coef_],
        "intercept": [round(float(v), 6) for v in model.intercept_],
    }


def figures(weights: dict) -> None:
    """Binary accuracy and partial recall on the held-out set: classifier alone, rules alone, both."""
    from prefline.evals.scorers.style_refusal import classify_refusal
    from prefline.evals.scorers.style_refusal_model import class_probabilities, classify_refusals, opening_vectors

    rows = load(HELDOUT_FILE)
    gold = [r["label"] for r in rows]
    w = {**weights, "coef": np.asarray(weights["coef"]), "intercept": np.asarray(weights["intercept"])}
    probs = class_probabilities(opening_vectors([r["text"] for r in rows]), w)
    alone = [CLASSES[k] for k in probs.argmax(axis=1)]
    rules = [classify_refusal(r["text"])[0] for r in rows]
    both = [label for label, _ in classify_refusals([r["text"] for r in rows])]
    for name, pred in (("classifier alone", alone), ("rules alone", rules), ("rules + classifier (shipped weights)", both)):
        binary = np.mean([(g != "none") == (p != "none") for g, p in zip(gold, pred)])
        partial = [p != "none" for g, p in zip(gold, pred) if g == "partial"]
        print(f"{HELDOUT_FILE} (n={len(rows)}), {name}: binary accuracy {binary:.3f}, partial recall {np.mean(partial):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="retrain and compare with the shipped weights; write nothing")
    args = parser.parse_args()
    weights = train()
    if args.check:
        shipped = json.loads(OUT.read_text(encoding="utf-8"))
        diff = max(abs(a - b) for ra, rb in zip(weights["coef"], shipped["coef"]) for a, b in zip(ra, rb))
        same = shipped["trained_on"] == weights["trained_on"] and diff < 1e-4
        print(f"shipped weights {'match' if same else 'DIFFER FROM'} a fresh training run (largest coefficient difference {diff:.2e})")
        sys.exit(0 if same else 1)
    OUT.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({weights['n_train']} training responses)")
    figures(weights)


if __name__ == "__main__":
    main()
