"""The preference layer: does the tuned model prefer what people preferred?

- **Held-out pair accuracy**: on pairs the adapter did not train on, the share where the
  policy's implicit reward, log pi(y|x) - log pi_ref(y|x) with the reference being the
  base model (the adapter disabled), is higher for the chosen response than for the
  rejected one. This is the quantity DPO optimizes, measured where it was not fitted.
- **Log-prob scoring**: responses are tokenized the way TRL's DPOTrainer does (chat
  template of prompt, and of prompt + response; the response starts where the two
  diverge), batched by length, and only response positions go through the LM head:
  the vocabulary projection is most of the cost for a small model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prefline.stats import wilson_interval


@dataclass
class Tokenized:
    prompt: list[int]
    response: list[int]


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_response(tokenizer, prompt: list[dict[str, str]], response: list[dict[str, str]]) -> Tokenized:
    """Token ids of the prompt (as the model sees it before answering) and of the response."""
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full_ids = tokenizer.apply_chat_template(prompt + response, tokenize=True, return_dict=True)["input_ids"]
    cut = common_prefix_length(prompt_ids, full_ids)
    return Tokenized(prompt=list(full_ids[:cut]), response=list(full_ids[cut:]))


def sequence_logprobs(model, tokenizer, sequences: list[Tokenized], batch_size: int = 8, max_length: int = 1024) -> np.ndarray:
    """Sum of log-probabilities of each response given its prompt, in input order.

    Batches hold sequences of similar length (less padding); hidden states are projected
    through the LM head only at the positions that predict response tokens.
    """
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # Under PEFT, the base model still holds the body and head, with LoRA layers injected into them.
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(lm, "model", None)
    head = lm.get_output_embeddings()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i].prompt) + len(sequences[i].response))
    totals = np.zeros(len(sequences), dtype=np.float64)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        rows = []
        for i in batch:
            ids = (sequences[i].prompt + sequences[i].response)[-max_length:]
            n_resp = min(len(sequences[i].response), len(ids) - 1)
            rows.append((ids, n_resp))
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        targets = torch.zeros((len(rows), width), dtype=torch.bool)  # positions whose *next* token is a response token
        for r, (ids, n_resp) in enumerate(rows):
            input_ids[r, :len(ids)] = torch.tensor(ids)
            attention[r, :len(ids)] = 1
            targets[r, len(ids) - 1 - n_resp:len(ids) - 1] = True
        with torch.inference_mode():
            if body is not None and head is not None:
                hidden = body(input_ids=input_ids, attention_mask=attention).last_hidden_state
                logits = head(hidden[targets]).float()
            else:  # models without the usual body/head split
                logits = model(input_ids=input_ids, attention_mask=attention).logits[targets].float()
            next_ids = input_ids[:, 1:][targets[:, :-1]]
            token_logps = torch.log_softmax(logits, dim=-1).gather(1, next_ids[:, None]).squeeze(1)
        per_row = targets.sum(dim=1).tolist()
        for r, chunk in zip(batch, torch.split(token_logps, per_row)):
            totals[r] = float(chunk.sum())
    return totals


def pair_accuracy(model, tokenizer, pairs: list[dict[str, Any]], batch_size: int = 8, reference_model=None) -> list[dict[str, Any]]:  # noqa: ANN001
    """Per pair: implicit rewards of chosen and rejected under a PEFT model, and whether chosen wins.

    ``model`` is a PEFT model whose reference is the same model with the adapter disabled, or,
    with ``reference_model`` (a fully fine-tuned policy's base), any causal LM.
    Each pair dict has ``prompt``, ``chosen``, ``rejected`` (message lists), ``id`` and ``slices``.
    """
    chosen = [tokenize_response(tokenizer, p["prompt"], p["chosen"]) for p in pairs]
    rejected = [tokenize_response(tokenizer, p["prompt"], p["rejected"]) for p in pairs]
    sequences = chosen + rejected
    policy = sequence_logprobs(model, tokenizer, sequences, batch_size)
    if reference_model is not None:
        reference = sequence_logprobs(reference_model, tokenizer, sequences, batch_size)
    else:
        with model.disable_adapter():
            reference = sequence_logprobs(model, tokenizer, sequences, batch_size)
    n = len(pairs)
    results = []
    for i, p in enumerate(pairs):
        r_chosen = policy[i] - reference[i]
        r_rejected = policy[n + i] - reference[n + i]
        correct = 1.0 if r_chosen > r_rejected else 0.5 if r_chosen == r_rejected else 0.0
        results.append({"id": p["id"], "slices": p["slices"], "reward_chosen": r_chosen, "reward_rejected": r_rejected,
                        "margin": r_chosen - r_rejected, "correct": correct})
    return results


def accuracy_by_slice(results: list[dict[str, Any]], confidence: float = 0.9) -> dict[str, Any]:
    """Accuracy overall and per ``key=value`` slice, each with n and a Wilson interval.

    A tie counts half a correct pair. Accuracy is a share, so the interval is Wilson's rather than a
    bootstrap: 8 of 8 held-out pairs right gives [0.75, 1.00] at 90%, where a bootstrap of eight
    ones gives [1, 1] and would claim a certainty eight pairs cannot give.
    """
    groups: dict[str, list[float]] = {}
    for r in results:
        for name in ["overall"] + [f"{k}={v}" for k, v in sorted(r["slices"].items())]:
            groups.setdefault(name, []).append(r["correct"])
    out = {}
    for name, values in sorted(groups.items(), key=lambda kv: (kv[0] != "overall", kv[0])):
        low, high = wilson_interval(sum(values), len(values), confidence)
        out[name] = {"n": len(values), "accuracy": float(np.mean(values)), "ci": [float(low), float(high)]}
    return out


def reward_model_accuracy(judge, pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per pair: a trained reward model's scores for chosen and rejected, and whether chosen scores higher.

    ``judge`` is a :class:`prefline.evals.judges.RewardModelJudge`.
    """
    prompts = [p["prompt"] for p in pairs]
    chosen = judge.score(prompts, [p["chosen"][-1]["content"] for p in pairs])
    rejected = judge.score(prompts, [p["rejected"][-1]["content"] for p in pairs])
    return [{"id": p["id"], "slices": p["slices"], "reward_chosen": c, "reward_rejected": r, "margin": c - r,
             "correct": 1.0 if c > r else 0.5 if c == r else 0.0}
            for p, c, r in zip(pairs, chosen, rejected)]
