"""The one vocabulary of preference data: a Pair, its messages, its slice tags.

Every reader turns its input into :class:`Pair` objects (or a :class:`RowError` naming
what is wrong with a row). Pairs are stored in TRL's conversational form, so the
training stage hands them to TRL unchanged:

- ``prompt``: the conversation so far, a list of ``{"role", "content"}`` messages
  (system / user / assistant turns; the last one is the user's).
- ``chosen`` / ``rejected``: the two candidate assistant replies, each a one-message list.
- ``slices``: free tags naming which part of real usage the pair covers
  (e.g. ``intent``, ``risk``, ``surface``); values are strings.
- ``source``: where the signal came from (a file, a collection method, a judge).
- ``weight``: how much the pair should count in training, in (0, 1]; 1.0 unless the
  data pipeline's consensus assigned a lower confidence.
- ``id``: the content hash of prompt + chosen + rejected; equal content, equal id.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from prefline.hashing import content_hash

SCHEMA_VERSION = 1
ROLES = ("system", "user", "assistant", "tool")


class RowError(ValueError):
    """A row that cannot become a Pair; the message says which field and why."""


@dataclass
class Pair:
    prompt: list[dict[str, str]]
    chosen: list[dict[str, str]]
    rejected: list[dict[str, str]]
    slices: dict[str, str] = field(default_factory=dict)
    source: str = ""
    weight: float = 1.0
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = pair_id(self.prompt, self.chosen, self.rejected)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def pair_id(prompt: list[dict], chosen: list[dict], rejected: list[dict]) -> str:
    return content_hash({"prompt": prompt, "chosen": chosen, "rejected": rejected})


def _messages(value: Any, field_name: str, default_role: str) -> list[dict[str, str]]:
    """A string or a list of messages -> a validated list of messages."""
    if isinstance(value, str):
        if not value.strip():
            raise RowError(f"'{field_name}' is an empty string")
        return [{"role": default_role, "content": value}]
    if not isinstance(value, list):
        raise RowError(f"'{field_name}' must be a string or a list of messages, got {type(value).__name__}")
    if not value:
        raise RowError(f"'{field_name}' is an empty list")
    messages = []
    for index, message in enumerate(value):
        where = f"'{field_name}[{index}]'"
        if not isinstance(message, dict):
            raise RowError(f"{where} must be an object with 'role' and 'content', got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise RowError(f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise RowError(f"{where}.content must be a string, got {type(content).__name__}")
        if not content.strip():
            raise RowError(f"{where}.content is empty")
        messages.append({"role": role, "content": content})
    return messages


def pair_from_row(row: Any, default_source: str = "") -> Pair:
    """Validate one input row (TRL conversational or plain-string form) into a Pair."""
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
    missing = [name for name in ("prompt", "chosen", "rejected") if name not in row]
    if missing:
        raise RowError(f"missing field(s): {', '.join(repr(m) for m in missing)}")
    prompt = _messages(row["prompt"], "prompt", "user")
    if prompt[-1]["role"] != "user":
        raise RowError(f"the prompt's last message must be the user's, got role {prompt[-1]['role']!r}")
    chosen = _messages(row["chosen"], "chosen", "assistant")
    rejected = _messages(row["rejected"], "rejected", "assistant")
    for name, reply in (("chosen", chosen), ("rejected", rejected)):
        if reply[0]["role"] != "assistant":
            raise RowError(f"'{name}' must start with an assistant message, got role {reply[0]['role']!r}")
    if chosen == rejected:
        raise RowError("'chosen' and 'rejected' are identical: the pair teaches nothing")

    slices = row.get("slices", {}) or {}
    if not isinstance(slices, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in slices.items()):
        raise RowError("'slices' must be an object of string tags, e.g. {\"intent\": \"coding\"}")
    source = row.get("source", default_source) or default_source
    if not isinstance(source, str):
        raise RowError(f"'source' must be a string, got {type(source).__name__}")
    weight = row.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 < float(weight) <= 1.0:
        raise RowError(f"'weight' must be a number in (0, 1], got {weight!r}")
    return Pair(prompt=prompt, chosen=chosen, rejected=rejected, slices=slices, source=source, weight=float(weight))
