"""Running the preference layer against the ledger: load what a metric needs, compute, store.

- ``pair_accuracy_eval``: an adapter on a dataset version's pairs. DPO-family adapters
  are scored by their implicit reward against the base (adapter disabled); reward-model
  adapters by their scores. Stored as kind ``pair_accuracy`` or ``reward_accuracy``.
- ``win_rate_eval``: a candidate run against a baseline run on the same suite, under a
  reward-model judge or an LLM judge on any generation backend. Stored as ``win_rate``.
- ``win_rates_eval``: several candidate runs against one baseline under one judge, each stored as
  ``win_rate``, with their length-controlled win rates fitted jointly (``joint`` in each summary).
"""

from __future__ import annotations

import json
from typing import Any

from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.ledger import Ledger

JUDGE_DECODING = DecodingConfig(max_new_tokens=8, batch_size=16)


def _pairs(dataset: dict[str, Any]) -> list[dict[str, Any]]:
    from prefline.data.store import load_pairs

    rows = load_pairs(dataset).to_list()
    return [{"id": r["id"], "slices": json.loads(r["slices"]), "prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
            for r in rows]


def pair_accuracy_eval(ledger: Ledger, dataset_ref: str, adapter_ref: str, batch_size: int = 8) -> dict[str, Any]:
    """Held-out pair accuracy of an adapter, overall and per slice, stored in the ledger."""
    from prefline.evals.preference import accuracy_by_slice, pair_accuracy, reward_model_accuracy

    dataset, adapter = ledger.get_dataset(dataset_ref), ledger.get_adapter(adapter_ref)
    warning = None
    if dataset["content_hash"] == adapter["dataset_hash"]:
        warning = (f"{dataset['name']}@{dataset['version']} holds the pairs {adapter['name']} was trained on: "
                   "this is training accuracy, not held-out accuracy")
    pairs = _pairs(dataset)
    if adapter["method"] == "reward":
        from prefline.evals.judges import RewardModelJudge

        results, kind = reward_model_accuracy(RewardModelJudge(adapter, batch_size=batch_size), pairs), "reward_accuracy"
    else:
        from prefline.models import load_model, load_tokenizer, resolve_model
        from prefline.provenance import adapter_path, is_full_model, load_full_model

        ref, folder = resolve_model(adapter["base_model"]), adapter_path(adapter)
        tokenizer = load_tokenizer(ref, padding_side="right")
        if is_full_model(folder):  # finetune: full: the reference is the base, loaded beside it
            policy = load_full_model(folder)
            results = pair_accuracy(policy, tokenizer, pairs, batch_size, reference_model=load_model(ref))
        else:
            from peft import PeftModel

            results = pair_accuracy(PeftModel.from_pretrained(load_model(ref), str(folder)).eval(), tokenizer, pairs, batch_size)
        kind = "pair_accuracy"
    summary = {"slices": accuracy_by_slice(results), "warning": warning,
               "dataset": f"{dataset['name']}@{dataset['version']}", "adapter": adapter["name"], "method": adapter["method"]}
    eval_id = ledger.add_preference_eval(kind=kind, dataset_id=dataset["id"], adapter_id=adapter["id"],
                                         summary=summary, items=results)
    return {"id": eval_id, "kind": kind, **summary}


def make_judge(ledger: Ledger, judge: str, backend: str = "hf", model: str | None = None, **backend_options: Any):
    """``reward:ADAPTER`` for a trained reward model, or ``llm`` for an LLM judge on a generation backend."""
    from prefline.evals.judges import LLMJudge, RewardModelJudge

    if judge.startswith("reward:"):
        adapter = ledger.get_adapter(judge.split(":", 1)[1])
        if adapter["method"] != "reward":
            raise PreflineError(f"adapter {adapter['name']!r} was trained with {adapter['method']}, not as a reward model (prefline train reward)")
        return RewardModelJudge(adapter)
    if judge != "llm":
        raise PreflineError(f"unknown judge {judge!r}: use reward:ADAPTER or llm")
    from prefline.evals.backends import get_backend

    engine_cls = get_backend(backend)
    ref = engine_cls.model_ref(model, None, **backend_options)
    return LLMJudge(engine_cls(ref, JUDGE_DECODING, None, **backend_options), label=f"{backend}:{ref.spec}")


def win_rate_eval(ledger: Ledger, baseline_run: str, candidate_run: str, judge) -> dict[str, Any]:
    """Raw and length-controlled win rate of the candidate run, with the judge's flip rate, stored."""
    from prefline.evals.headtohead import head_to_head

    result = head_to_head(ledger, baseline_run, candidate_run, judge)
    eval_id = ledger.add_preference_eval(kind="win_rate", baseline_run_id=result["baseline_run"], candidate_run_id=result["candidate_run"],
                                         judge=result["judge"], summary={"slices": result["slices"]}, items=result["items"])
    return {"id": eval_id, "kind": "win_rate", **{k: v for k, v in result.items() if k != "items"}}


def win_rates_eval(ledger: Ledger, baseline_run: str, candidate_runs: list[str], judge, samples: int = 1000) -> dict[str, Any]:
    """Several candidates against one baseline: each judged and stored as ``win_rate_eval`` does, and
    their length-controlled win rates fitted jointly (per-prompt difficulty, shared length term)."""
    from prefline.evals.headtohead import head_to_head, joint_length_control

    runs = [ledger.get_run(c)["id"] for c in candidate_runs]
    repeated = sorted({r for r in runs if runs.count(r) > 1})
    if repeated:
        raise PreflineError(f"candidate run(s) {', '.join(map(str, repeated))} given more than once")
    results = [head_to_head(ledger, baseline_run, run, judge, samples=samples) for run in runs]
    joint = joint_length_control(results, samples=max(samples // 5, 1))  # each joint resample refits every candidate
    out = []
    for m, result in enumerate(results):
        summary: dict[str, Any] = {"slices": result["slices"]}
        if joint is not None:
            summary["joint"] = {"length_coefficient": joint["length_coefficient"], **joint["candidates"][m],
                                "with_runs": [r["candidate_run"] for r in results]}
        eval_id = ledger.add_preference_eval(kind="win_rate", baseline_run_id=result["baseline_run"], candidate_run_id=result["candidate_run"],
                                             judge=result["judge"], summary=summary, items=result["items"])
        out.append({"id": eval_id, "kind": "win_rate", **{k: v for k, v in result.items() if k != "items"}, "joint": summary.get("joint")})
    note = None if joint is not None else "a candidate has too few judged items to fit length control: no joint fit"
    return {"baseline_run": results[0]["baseline_run"], "judge": results[0]["judge"],
            "length_coefficient": joint["length_coefficient"] if joint else None, "candidates": out, "note": note}
