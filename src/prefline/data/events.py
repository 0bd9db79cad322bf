"""Implicit user actions -> pairs, by named rules (``events`` in an ingest rules file).

An event log has one event per row: ``{"session", "event", "response_id", ...}``.

| event | what happened | extra fields |
|---|---|---|
| ``response`` | the model showed a response | ``prompt``, ``response``, optional ``retry_of``, ``slices`` |
| ``accept`` | the user took the response (copied, sent, applied it) | |
| ``edit`` | the user rewrote the response before using it | ``text``: the edited response |
| ``regenerate`` | the user asked for another response to the same prompt | |
| ``reask`` | the user asked the question again, reworded | |
| ``thumbs_up`` / ``thumbs_down`` | explicit feedback | |
| ``escalate`` | the user asked for a human | |
| ``abandon`` | the user left without using any response | |

Every row may also carry ``user`` and ``time``. Within a session, events are taken in file order
(or by ``time`` when every event of the session has one). A response shown after a ``regenerate``
or ``reask`` (or naming ``retry_of``) joins the *thread* of the response it replaces; the thread's
prompt is its first response's prompt.

Rules: ``edit_over_draft`` makes (prompt, the user's edit, the draft) for each edit; each outcome
rule makes a pair of two responses in one thread when one has a ``preferred`` event and the other
an ``over`` event (first matching rule wins; at most ``max_pairs_per_thread`` per thread). The rule's
name and confidence go on the signal. Events that feed no rule are excluded, with that reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from prefline.data.schema import RowError, Signal, check_slices, optional_text, prompt_messages, reply_messages
from prefline.data.signals import EVENT_TYPES, Fate, KindContext, OutcomeRule, signal_kind
from prefline.data.sources import RawRecord


@dataclass
class _Event:
    line: int
    session: str
    type: str
    response_id: str
    time: Any = None
    user: str | None = None
    prompt: list | None = None
    text: list | None = None          # the response shown, or the user's edit
    retry_of: str | None = None
    slices: dict[str, str] = field(default_factory=dict)


@dataclass
class _Shown:
    event: _Event
    thread: str                                               # response_id of the thread's first response
    outcomes: dict[str, int] = field(default_factory=dict)    # feedback event -> its line
    edits: list[_Event] = field(default_factory=list)


def _id(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise RowError(f"'{name}' must be a non-empty string or number, got {value!r}" if name in row else f"missing field(s): {name!r}")
    return str(value)


def parse_event(row: Any, line: int, ctx: KindContext) -> _Event:
    """One event row, validated on its own (references to other events are checked per session)."""
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}")
    session, kind = _id(row, "session"), row.get("event")
    if kind not in EVENT_TYPES:
        raise RowError(f"'event' must be one of {', '.join(EVENT_TYPES)}, got {kind!r}")
    event = _Event(line, session, kind, _id(row, "response_id"), time=row.get("time"), user=optional_text(row, "user"),
                   slices=check_slices(row.get("slices"), ctx.rules.slices))
    if event.time is not None and (isinstance(event.time, bool) or not isinstance(event.time, (str, int, float))):
        raise RowError(f"'time' must be a number or a timestamp string, got {type(event.time).__name__}")
    if kind == "response":
        missing = [name for name in ("prompt", "response") if name not in row]
        if missing:
            raise RowError(f"a response event needs field(s): {', '.join(map(repr, missing))}")
        event.prompt = prompt_messages(row["prompt"])
        event.text = reply_messages(row["response"], "response")
        event.retry_of = str(row["retry_of"]) if row.get("retry_of") not in (None, "") else None
    elif kind == "edit":
        if "text" not in row:
            raise RowError("an edit event needs field 'text' (the edited response)")
        event.text = reply_messages(row["text"], "text")
    return event


def _ordered(events: list[_Event]) -> list[_Event]:
    times = [e.time for e in events]
    if all(t is not None for t in times) and len({isinstance(t, str) for t in times}) == 1:
        return sorted(events, key=lambda e: (e.time, e.line))
    return sorted(events, key=lambda e: e.line)


def _threads(events: list[_Event]) -> tuple[dict[str, list[_Shown]], list[Fate]]:
    """Walk one session: responses grouped into threads, feedback attached; bad references as Fates."""
    shown: dict[str, _Shown] = {}
    threads: dict[str, list[_Shown]] = {}
    fates: list[Fate] = []
    waiting: str | None = None  # the thread a regenerate/reask left open for the next response
    for event in _ordered(events):
        where = f"session {event.session!r}"
        if event.type == "response":
            if event.response_id in shown:
                fates.append(Fate(event.line, "rejected", "invalid", f"response_id {event.response_id!r} was already shown at line {shown[event.response_id].event.line} in {where}"))
                continue
            if event.retry_of is not None and event.retry_of not in shown:
                fates.append(Fate(event.line, "rejected", "invalid", f"retry_of refers to response {event.retry_of!r}, not shown earlier in {where}"))
                continue
            thread = shown[event.retry_of].thread if event.retry_of else (waiting or event.response_id)
            waiting = None
            shown[event.response_id] = _Shown(event, thread)
            threads.setdefault(thread, []).append(shown[event.response_id])
            continue
        target = shown.get(event.response_id)
        if target is None:
            fates.append(Fate(event.line, "rejected", "invalid", f"{event.type} refers to response {event.response_id!r}, not shown earlier in {where}"))
            continue
        if event.type == "edit":
            target.edits.append(event)
            continue
        if event.type in target.outcomes:
            fates.append(Fate(event.line, "duplicate", "duplicate", f"duplicate of line {target.outcomes[event.type]}: {event.type} on response {event.response_id!r} again"))
            continue
        target.outcomes[event.type] = event.line
        if event.type in ("regenerate", "reask"):
            waiting = target.thread
    return threads, fates


def _marks(response: _Shown, events: list[str]) -> list[int]:
    return [line for kind, line in response.outcomes.items() if kind in events]


def _side(response: _Shown, rule: OutcomeRule) -> str | None:
    good, bad = _marks(response, rule.preferred), _marks(response, rule.over)
    return "preferred" if good and not bad else "over" if bad and not good else None


def thread_signals(thread: list[_Shown], ctx: KindContext, source: str) -> Iterator[Signal | Fate]:
    rules = ctx.rules.events
    root = thread[0].event
    for response in thread:
        draft = response.event
        for edit in response.edits if rules.edit_over_draft.enabled else []:
            if " ".join(edit.text[0]["content"].split()) == " ".join(draft.text[0]["content"].split()):
                yield Fate(edit.line, "excluded", "edit-unchanged", "the edit leaves the draft unchanged")
                continue
            ctx.stats["events.edit_over_draft"] += 1
            yield Signal(prompt=draft.prompt, a=edit.text, b=draft.text, label="a", kind="events", rule="edit_over_draft",
                         source=source, annotator=edit.user or draft.user, confidence=rules.edit_over_draft.confidence,
                         slices=draft.slices, lines=sorted({draft.line, edit.line}), meta={"session": draft.session})
    made = 0
    for x, y in combinations(thread, 2):
        matches = [(rule, (_side(x, rule), _side(y, rule))) for rule in rules.rules if rule.enabled]
        matches = [(rule, sides) for rule, sides in matches if sides in (("preferred", "over"), ("over", "preferred"))]
        if not matches:
            continue
        if made >= rules.max_pairs_per_thread:
            ctx.stats["events.over_cap"] += 1
            continue
        rule, sides = matches[0]  # the first rule names the pair; the events of later agreeing rules back it too
        lines = {x.event.line, y.event.line}
        for other, other_sides in matches:
            if other_sides == sides:
                lines.update(_marks(x, other.preferred + other.over) + _marks(y, other.preferred + other.over))
        try:
            yield Signal(prompt=root.prompt, a=x.event.text, b=y.event.text, label="a" if sides[0] == "preferred" else "b",
                         kind="events", rule=rule.name, source=source, annotator=root.user, confidence=rule.confidence,
                         slices=root.slices, lines=sorted(lines), meta={"session": root.session})
        except RowError:
            ctx.stats["events.identical_responses"] += 1
            continue
        made += 1
        ctx.stats[f"events.{rule.name}"] += 1


@signal_kind("events", unused_reason="no rule turns this event into a pair (see events.rules)",
             fields=("session", "event", "response_id", "time", "user", "slices", "prompt", "response", "retry_of", "text"))
def read_events(records: Iterable[RawRecord], ctx: KindContext) -> Iterator[Signal | Fate]:
    sessions: dict[str, list[_Event]] = {}
    for record in records:
        try:
            event = parse_event(record.row, record.line, ctx)
        except RowError as exc:
            yield Fate(record.line, "rejected", "invalid", str(exc), record.raw)
            continue
        sessions.setdefault(event.session, []).append(event)
    for events in sessions.values():
        threads, fates = _threads(events)
        yield from fates
        for thread in threads.values():
            yield from thread_signals(thread, ctx, ctx.source)
