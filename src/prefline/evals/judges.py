"""Pairwise judges for candidate-vs-baseline win rates.

Every prompt is judged twice, with the candidate shown first and then second; a judge
that picks the same *position* both times has judged the layout, not the answers, and
that prompt counts as a tie (its flip is reported). Two judges:

- ``LLMJudge``: any generation backend (an OpenAI-compatible endpoint, or in-process hf)
  asked with a versioned prompt to answer A, B or tie. The prompt text and version are
  stored with every result.
- ``RewardModelJudge``: a prefline-trained reward model (a LoRA sequence-classification
  adapter) scores each response; the higher score wins. It sees one response at a time,
  so it cannot flip, which the flip rate then shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

JUDGE_PROMPT_VERSION = 1
JUDGE_SYSTEM = (
    "You compare two answers to the same request and decide which one serves the user better. "
    "Judge correctness first, then whether the request was actually fulfilled, then clarity. "
    "Do not reward length, confidence or politeness for their own sake, and do not prefer an answer "
    "because of its position."
)
JUDGE_USER = (
    "Request:\n{request}\n\n[Answer A]\n{a}\n[End of answer A]\n\n[Answer B]\n{b}\n[End of answer B]\n\n"
    "Which answer is better? Reply with exactly one of: A, B, tie."
)
# Capital A / B only: a lowercase "a" is usually the article ("a tie", "a better answer").
VERDICT = re.compile(r"\b(A|B|[Tt]ie|TIE)\b")


def render_request(messages: list[dict[str, str]]) -> str:
    """The conversation the answers respond to, as plain text for the judge."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def parse_verdict(text: str) -> str | None:
    """The first A / B / tie in the judge's reply, or None if it gave none."""
    bare = text.strip().strip("*.").lower()
    if bare in ("a", "b", "tie"):
        return "tie" if bare == "tie" else bare.upper()
    match = VERDICT.search(text)
    if match is None:
        return None
    word = match.group(1)
    return "tie" if word.lower() == "tie" else word.upper()


@dataclass
class Judgment:
    first: str  # verdict with the candidate as A
    second: str  # verdict with the candidate as B
    raw: list[str] = field(default_factory=list)  # what the judge said, for the evidence


class LLMJudge:
    name = "llm"

    def __init__(self, backend, label: str):
        self.backend = backend
        self.label = label

    def describe(self) -> dict[str, Any]:
        return {"kind": "llm", "model": self.label, "prompt_version": JUDGE_PROMPT_VERSION,
                "system": JUDGE_SYSTEM, "user_template": JUDGE_USER}

    def _conversation(self, request: str, a: str, b: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": JUDGE_USER.format(request=request, a=a, b=b)}]

    def judge(self, prompts: list[list[dict[str, str]]], candidate: list[str], baseline: list[str]) -> list[Judgment]:
        requests = [render_request(p) for p in prompts]
        conversations = [self._conversation(r, c, b) for r, c, b in zip(requests, candidate, baseline)]
        conversations += [self._conversation(r, b, c) for r, c, b in zip(requests, candidate, baseline)]
        replies = [g.output for g in self.backend.generate(conversations)]
        n = len(prompts)
        # An unreadable reply is treated as a tie and kept in the evidence.
        return [Judgment(first=parse_verdict(replies[i]) or "tie", second=parse_verdict(replies[n + i]) or "tie",
                         raw=[replies[i], replies[n + i]]) for i in range(n)]


class RewardModelJudge:
    name = "reward"

    def __init__(self, adapter: dict[str, Any], batch_size: int = 8):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification

        from prefline.models import load_tokenizer, resolve_model

        ref = resolve_model(adapter["base_model"])
        self.tokenizer = load_tokenizer(ref, padding_side="right")
        base = AutoModelForSequenceClassification.from_pretrained(ref.path, num_labels=1, dtype=torch.float32)
        base.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = PeftModel.from_pretrained(base, adapter["path"]).eval()
        self.adapter = adapter
        self.batch_size = batch_size
        self._torch = torch

    def describe(self) -> dict[str, Any]:
        return {"kind": "reward", "adapter": self.adapter["name"], "adapter_hash": self.adapter["adapter_hash"]}

    def score(self, prompts: list[list[dict[str, str]]], responses: list[str]) -> list[float]:
        texts = [self.tokenizer.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=False)
                 for p, r in zip(prompts, responses)]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            with self._torch.inference_mode():
                scores.extend(self.model(**enc).logits[:, 0].float().tolist())
        return scores

    def judge(self, prompts, candidate, baseline) -> list[Judgment]:
        cand = self.score(prompts, candidate)
        base = self.score(prompts, baseline)

        def verdict(first: float, second: float) -> str:
            return "A" if first > second else "B" if second > first else "tie"

        return [Judgment(first=verdict(c, b), second=verdict(b, c), raw=[f"candidate {c:.4f}", f"baseline {b:.4f}"])
                for c, b in zip(cand, base)]
