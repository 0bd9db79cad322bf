"""The one vocabulary of preference data: a Pair, a Signal, their messages and slice tags.

Every reader turns its input into :class:`Pair` objects or :class:`Signal` objects (or a
:class:`RowError` naming what is wrong with a row). Pairs are stored in TRL's conversational
form, so the training stage hands them to TRL unchanged:

- ``prompt``: the conversation so far, a list of ``{"role", "content"}`` messages
  (system / user / assistant turns; the last one is the user's).
- ``chosen`` / ``rejected``: the two candidate assistant replies, each a one-message list.
- ``slices``: free tags naming which part of real usage the pair covers
  (e.g. ``intent``, ``risk``, ``surface``); values are strings.
- ``source``: where the signal came from (a file, a collection method, a judge).
- ``weight``: how much the pair should count in training, in (0, 1]; 1.0 unless the
  data pipeline's consensus assigned a lower confidence.
- ``id``: the content hash of prompt + chosen + rejected; equal content, equal id.
- ``confidence``, ``consensus``, ``rule``, ``n_signals``, ``axes``, ``signals``, ``key``: how
  ingest's consensus made the pair from its signals (see :class:`Pair`).

A :class:`Signal` is one piece of evidence about two responses to one prompt (a human's
A/B choice, two ratings, a user's edit, a judge's verdict). Signals about the same
prompt and the same two responses share a ``key``, whichever response came first; the
consensus stage turns each key's signals into at most one Pair.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

from prefline.hashing import canonical_json, content_hash

SCHEMA_VERSION = 1
ROLES = ("system", "user", "assistant", "tool")
LABELS = ("a", "b", "tie")
_FLIP = {"a": "b", "b": "a", "tie": "tie"}


class RowError(ValueError):
    """A row that cannot become a Pair; the message says which field and why."""


Messages = list[dict[str, str]]  # [{"role", "content"}, ...]

# The fields ingest fills in (the id it hashes, the record of how consensus made the pair): an input
# row does not give them, so they are not part of PairContent.
_BY_INGEST = {"by_ingest": True}


@dataclass
class Pair:
    """One preference pair, as a row of a dataset version's ``pairs.parquet``: the one definition of a pair.

    Its fields, in this order, are the columns of ``pairs.parquet``, whose Arrow schema is built from
    them (``prefline.data.store.schemas``): a :data:`Messages` field is a list of ``{role, content}``
    structs, any other dict or list (``slices``, ``axes``, ``signals``) is JSON text, and ``str``,
    ``float`` and ``int`` are string, double and int64 columns. A field without a default is required;
    every column is nullable, and the consensus record is None in a pair made outside ingest.

    Consensus makes one Pair per group of signals (``consensus.pair_row``); a validated input row is
    the fields ingest does not fill in (:class:`PairContent`, from :func:`pair_fields`).
    """

    id: str = field(default="", kw_only=True, metadata=_BY_INGEST)  # pair_id of its content, computed when not given
    prompt: Messages
    chosen: Messages
    rejected: Messages
    slices: dict[str, str] = field(default_factory=dict)
    source: str = ""
    weight: float = 1.0
    # how consensus made the pair
    confidence: float | None = field(default=None, metadata=_BY_INGEST)   # the label's confidence, in [0, 1]
    consensus: str | None = field(default=None, metadata=_BY_INGEST)      # the method: majority, dawid-skene, review, none
    rule: str | None = field(default=None, metadata=_BY_INGEST)           # the signals' rules, sorted, comma-separated
    n_signals: int | None = field(default=None, metadata=_BY_INGEST)
    axes: dict[str, str] = field(default_factory=dict, metadata=_BY_INGEST)           # axis -> chosen, rejected or tie
    signals: list[dict[str, Any]] = field(default_factory=list, metadata=_BY_INGEST)  # each signal's vote, as seen from this pair
    key: str | None = field(default=None, metadata=_BY_INGEST)            # the signals' key (Signal.key)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = pair_id(self.prompt, self.chosen, self.rejected)

    def to_row(self) -> dict[str, Any]:
        """The pair's fields as a dict, in column order, sharing its lists and dicts."""
        return {name: getattr(self, name) for name in PAIR_FIELDS}


PAIR_FIELDS = tuple(f.name for f in fields(Pair))

# A validated input row: the fields of Pair that ingest does not fill in, in their order.
PairContent = NamedTuple("PairContent", [(f.name, f.type) for f in fields(Pair) if not f.metadata.get("by_ingest")])
PairContent.__doc__ = "A validated input row: the fields of :class:`Pair` an input row gives (all but its id and consensus record)."


def pair_id(prompt: list[dict], chosen: list[dict], rejected: list[dict]) -> str:
    return content_hash({"prompt": prompt, "chosen": chosen, "rejected": rejected})


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Signal:
    """One piece of evidence about which of two responses to a prompt is better.

    ``label`` is ``"a"``, ``"b"`` or ``"tie"``. On creation the two responses are put in a
    fixed order (by content hash) and the label and per-axis choices flipped to match, so
    "A better than B" and "B worse than A" become the same signal with the same ``key``.
    ``pair_ids`` (not a field) holds the :func:`pair_id` of the pair it makes when ``a`` or
    when ``b`` is chosen, hashed from the canonical JSON made for the key rather than made again.
    """

    prompt: list[dict[str, str]]
    a: list[dict[str, str]]
    b: list[dict[str, str]]
    label: str
    kind: str                       # the signal kind that produced it: pairs, pairwise, ratings, events, judge, review
    rule: str                       # the named rule within that kind, e.g. "edit_over_draft"
    source: str = ""                # the file or collection it came from
    annotator: str | None = None    # who gave it: a rater, a user, a judge model; None when unknown
    rationale: str | None = None
    axes: dict[str, str] = field(default_factory=dict)   # per-axis choices, e.g. {"tone": "b"}
    votes: list[dict[str, str]] = field(default_factory=list)  # per-rater labels behind one signal (ratings)
    confidence: float = 1.0         # the rule's confidence in (0, 1]
    slices: dict[str, str] = field(default_factory=dict)
    lines: list[int] = field(default_factory=list)        # input records it came from
    meta: dict[str, Any] = field(default_factory=dict)
    excluded: dict[str, str] | None = None                # {"category", "reason"}: kept out of consensus
    key: str = ""

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise RowError(f"a choice must be one of {', '.join(LABELS)}, got {self.label!r}")
        if self.a == self.b:
            raise RowError("the two responses are identical: the pair teaches nothing")
        ja, jb = canonical_json(self.a), canonical_json(self.b)
        ha, hb = _sha256(ja), _sha256(jb)
        if hb < ha:
            self.a, self.b, ja, jb, ha, hb = self.b, self.a, jb, ja, hb, ha
            self.label = _FLIP[self.label]
            self.axes = {axis: _FLIP[choice] for axis, choice in self.axes.items()}
            self.votes = [{**vote, "label": _FLIP[vote["label"]]} for vote in self.votes]
        jp = canonical_json(self.prompt)
        # content_hash({"prompt": ..., "responses": [ha, hb]}) and pair_id(prompt, chosen, rejected):
        # the canonical JSON of those dicts, put together from the pieces (keys in sorted order)
        self.key = _sha256(f'{{"prompt":{jp},"responses":["{ha}","{hb}"]}}')
        self.pair_ids = {"a": _sha256(f'{{"chosen":{ja},"prompt":{jp},"rejected":{jb}}}'),
                         "b": _sha256(f'{{"chosen":{jb},"prompt":{jp},"rejected":{ja}}}')}

    def to_row(self) -> dict[str, Any]:
        """The signal's fields as a dict, sharing its lists and dicts (a deep copy would cost more than the
        JSON text it is written as)."""
        return {name: getattr(self, name) for name in _SIGNAL_FIELDS}


_SIGNAL_FIELDS = tuple(f.name for f in fields(Signal))


def signal_from_row(row: dict[str, Any]) -> Signal:
    """A stored signal row (``Signal.to_row``) back into a Signal."""
    return Signal(**{k: v for k, v in row.items() if k != "key"})


def flip(label: str) -> str:
    return _FLIP[label]


def _messages(value: Any, field_name: str, default_role: str, allow_empty: bool = False) -> list[dict[str, str]]:
    """A string or a list of messages -> a validated list of messages.

    ``allow_empty``: an empty string is a valid message (a response can be empty: a model that
    produced nothing, which people still judged); the quality report flags it.
    """
    if isinstance(value, str):
        if not value.strip() and not allow_empty:
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
        if not content.strip() and not allow_empty:
            raise RowError(f"{where}.content is empty")
        messages.append({"role": role, "content": content})
    return messages


def prompt_messages(value: Any, field_name: str = "prompt") -> list[dict[str, str]]:
    """A prompt (string or messages) whose last message is the user's."""
    prompt = _messages(value, field_name, "user")
    if prompt[-1]["role"] != "user":
        raise RowError(f"the prompt's last message must be the user's, got role {prompt[-1]['role']!r}")
    return prompt


def reply_messages(value: Any, field_name: str) -> list[dict[str, str]]:
    """A response (string or messages) that starts with an assistant message; it may be empty."""
    reply = _messages(value, field_name, "assistant", allow_empty=True)
    if reply[0]["role"] != "assistant":
        raise RowError(f"'{field_name}' must start with an assistant message, got role {reply[0]['role']!r}")
    return reply


# --- implicit prompts: TRL's form without "prompt", and Anthropic HH-RLHF transcripts ------

_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def is_hh_transcript(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("\n\nHuman:")


def hh_messages(text: str, field_name: str) -> list[dict[str, str]]:
    """An HH-RLHF transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") -> messages."""
    if not isinstance(text, str):
        raise RowError(f"'{field_name}' must be an HH-RLHF transcript string, got {type(text).__name__}")
    parts = _HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise RowError(f"'{field_name}' is not an HH-RLHF transcript: it must start with '\\n\\nHuman:'")
    messages = []
    for index in range(1, len(parts), 2):
        role = "user" if parts[index] == "Human" else "assistant"
        content = parts[index + 1].strip()
        if not content:
            raise RowError(f"'{field_name}' turn {index // 2 + 1} ({parts[index]}) is empty")
        messages.append({"role": role, "content": content})
    return messages


def split_shared_prefix(chosen: list[dict[str, str]], rejected: list[dict[str, str]]) -> tuple[list, list, list]:
    """Two full conversations -> (shared prompt, chosen reply, rejected reply), as TRL's ``extract_prompt``."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    prompt, chosen_tail, rejected_tail = chosen[:shared], chosen[shared:], rejected[shared:]
    if not prompt:
        raise RowError("no 'prompt', and 'chosen' and 'rejected' share no opening messages to take as the prompt")
    if not chosen_tail or not rejected_tail:
        raise RowError("'chosen' and 'rejected' must each go on past the messages they share")
    if prompt[-1]["role"] != "user":
        raise RowError(f"the shared opening of 'chosen' and 'rejected' must end with the user's message, got role {prompt[-1]['role']!r}")
    return prompt, chosen_tail, rejected_tail


def _implicit_prompt(row: dict[str, Any]) -> tuple[list, list, list]:
    """The prompt of a row without one, where the format says what it is: the turns two HH-RLHF
    transcripts share, or the messages two conversations share (their roles mark the user's turns).

    Two plain strings do not say where a prompt would end ("The answer is 4." / "The answer is 5."
    share "The answer is"), so such a row is missing its prompt, and is rejected as such.
    """
    chosen, rejected = row["chosen"], row["rejected"]
    if is_hh_transcript(chosen) and is_hh_transcript(rejected):
        return split_shared_prefix(hh_messages(chosen, "chosen"), hh_messages(rejected, "rejected"))
    if isinstance(chosen, list) and isinstance(rejected, list):
        return split_shared_prefix(_messages(chosen, "chosen", "user"), _messages(rejected, "rejected", "user"))
    raise RowError(missing_message(row, ["prompt"]))


def missing_message(row: dict[str, Any], missing: list[str]) -> str:
    """``missing field(s): 'prompt' (found: 'promt', 'chosen', 'rejected'; 'promt' looks like 'prompt')``."""
    import difflib

    found = [str(name) for name in row]
    near = [f"{close[0]!r} looks like {name!r}" for name in missing
            if (close := difflib.get_close_matches(name, [f for f in found if f not in missing], n=1, cutoff=0.7))]
    listed = ", ".join(repr(f) for f in found[:20]) + (", ..." if len(found) > 20 else "") or "none"
    return f"missing field(s): {', '.join(repr(m) for m in missing)} (found: {listed}{'; ' + '; '.join(near) if near else ''})"


def require(row: dict[str, Any], names: tuple[str, ...] | list[str]) -> None:
    """A RowError naming every missing field, the fields found and the nearest match of each missing one."""
    missing = [name for name in names if name not in row]
    if missing:
        raise RowError(missing_message(row, missing))


# --- rows -> pairs ----------------------------------------------------------------------------


def check_slices(slices: Any, vocabulary: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Slice tags: an object of strings; with a vocabulary, each listed key takes only its listed values."""
    slices = slices or {}
    if not isinstance(slices, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in slices.items()):
        raise RowError("'slices' must be an object of string tags, e.g. {\"intent\": \"coding\"}")
    for key, value in slices.items():
        allowed = (vocabulary or {}).get(key)
        if allowed is not None and value not in allowed:
            raise RowError(f"slice {key}={value!r} is not in the vocabulary for {key!r} ({', '.join(allowed)})")
    return slices


def optional_text(row: dict[str, Any], name: str) -> str | None:
    """An optional string field; absent, null and empty all mean "not given"."""
    value = row.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a numeric id (an annotator, a source) from JSON or a Parquet column
    if not isinstance(value, str):
        raise RowError(f"'{name}' must be a string (or a whole-number id), got {type(value).__name__}")
    return value


def unit_weight(value: Any, name: str = "weight") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise RowError(f"'{name}' must be a number in (0, 1], got {value!r}")
    return float(value)


def pair_from_row(row: Any, default_source: str = "", slice_vocabulary: dict[str, list[str]] | None = None) -> Pair:
    """Validate one input row into a Pair.

    Accepted forms: TRL conversational (message lists) and standard (plain strings), each with an
    explicit ``prompt`` or with an implicit one (``chosen`` and ``rejected`` are whole conversations
    sharing an opening, which becomes the prompt), and HH-RLHF transcripts.
    """
    return Pair(*pair_fields(row, default_source, slice_vocabulary))


def pair_fields(row: Any, default_source: str = "", slice_vocabulary: dict[str, list[str]] | None = None) -> PairContent:
    """A row validated as :func:`pair_from_row` does, as the fields of its Pair that a row gives.

    Without the pair's id, whose hash of the whole pair ingest computes once, when it stores the pair.
    """
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
    missing = [name for name in ("chosen", "rejected") if name not in row]
    if "prompt" not in row and not missing:
        prompt, chosen, rejected = _implicit_prompt(row)
    else:
        require(row, ("prompt", "chosen", "rejected"))
        prompt = prompt_messages(row["prompt"])
        chosen = reply_messages(row["chosen"], "chosen")
        rejected = reply_messages(row["rejected"], "rejected")
    for name, reply in (("chosen", chosen), ("rejected", rejected)):
        if reply[0]["role"] != "assistant":
            raise RowError(f"'{name}' must start with an assistant message, got role {reply[0]['role']!r}")
    if chosen == rejected:
        raise RowError("'chosen' and 'rejected' are identical: the pair teaches nothing")

    slices = check_slices(row.get("slices"), slice_vocabulary)
    source = optional_text(row, "source") or default_source
    weight = unit_weight(row.get("weight", 1.0))
    return PairContent(prompt, chosen, rejected, slices, source, weight)
