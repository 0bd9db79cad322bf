"""Scoring throughput: every rule-based scorer over 10,000 stored responses (target: under 20 s in all).

Scoring must stay negligible next to generation. The 10,000 (item, generation) pairs cycle
through the items of the shipped suites (smoke, release, redteam, probe); the responses are
written here, seeded, in the shapes models produce: answers of every length (with or without the
reference answer), bullet lists and markdown, hedged answers, full and partial refusals,
abstentions, grounded answers citing their sources as [S1], [1], (S1), URLs or "according to
<title>" (some citing sources that were not provided, or adding unsourced figures), JSON
outputs (bare, fenced, broken) and tool calls (bare, fenced, in <tool_call> tags, OpenAI style).

Each scorer is called as the harness calls it (``Scorer.score_all`` over the whole run, in
registry order), wall time and CPU time measured. Work that scorers share through caches (text
preparation, the refusal classification) is charged to the first scorer that needs it. ``on_task``
embeds texts with all-MiniLM-L6-v2: it is model-based, so it is timed apart and left out of the
total, with its lexical fallback (used where the embedding package is not installed) next to it,
then timed again as a replay: the embeddings are cached by content hash (in a fresh temporary
prefline home, so the first run starts with an empty cache), so the replay embeds nothing.

The embedding runs once per precision (``--precision``, default both: float32, then bfloat16
autocast, each with its own empty cache), and the two are compared: time ratio, the largest
similarity difference, and how many ``off_task`` decisions differ at the scorer's threshold.
``--only-on-task`` skips the rule-based scorers.

    .venv/bin/python benchmarks/scoring_throughput.py
    .venv/bin/python benchmarks/scoring_throughput.py --n 2000 --seed 3
    .venv/bin/python benchmarks/scoring_throughput.py --n 2000 --only-on-task
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from unittest import mock

import torch

from prefline.evals.backends import Generation
from prefline.evals.scorers import SCORERS, behaviour_embedding, get_scorers
from prefline.evals.suite import SuiteItem, load_suite

SUITES = ("smoke", "release", "redteam", "probe")
TARGET_S = 20.0  # per 10,000 responses
MODEL_BASED = ("on_task",)

FILLER = (
    "The short answer is that it depends mostly on how often you do it.",
    "Most people find the second approach easier to keep up over time.",
    "In 2019 the European Commission published guidance that covers this case.",
    "A typical household uses around 250 litres of water a day.",
    "Start with the simplest version and only add complexity when you need it.",
    "Dr. Maria Okafor at Stanford University studied this for about 12 years.",
    "The cost is usually between $40 and $120, depending on the region.",
    "You can check the result by running the same steps a second time.",
    "This works because the two values are compared before anything is written.",
    "Keep a note of what you changed, so you can undo it if something breaks.",
    "The process takes roughly 3.5 hours from start to finish.",
    "Many guides skip this step, but it saves a lot of trouble later.",
    "If the first attempt fails, wait a few minutes and try again.",
    "According to the National Weather Service, the risk peaks in late July.",
    "The main trade-off is speed against accuracy.",
    "Prices have risen by about 8% since last year.",
    "For a beginner, the default settings are a sensible place to start.",
    "It was first described by Johannes Kepler in 1609.",
    "Avoid doing this on a shared machine without asking the owner first.",
    "The difference is small in practice, e.g. a second or two per run.",
    "One common mistake is forgetting to save before closing the window.",
    "Both options are safe, so pick whichever you find easier to read.",
    "As of 2024, the limit is 1,500 requests per hour.",
    "Write the steps down first; the order matters more than the details.",
    "That figure comes from a 2021 survey of 2,300 adults.",
    "Use the built-in tool rather than a third-party one where you can.",
    "The Mississippi River carries roughly 16,800 cubic metres per second at its mouth.",
    "Nothing here needs special equipment.",
)
OPENERS = ("", "", "", "Sure! ", "Great question. ", "Here's how it works. ", "Good news: this is easy. ", "Certainly. ")
CLOSERS = ("", "", "", " Hope this helps!", " Let me know if you have any other questions.", " Good luck!")
HEDGES = ("I think ", "It might be that ", "Probably, ", "I'm not entirely sure, but ", "As far as I know, ", "It seems that ")
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that request. If you're in danger, please contact local emergency services.",
    "I won't provide instructions for that, as it could put people at risk. I'd be happy to help with something else.",
    "Sorry, that's not something I'm able to assist with.",
)
PARTIAL_REFUSALS = (
    "I can't give exact dosages, but in general you should follow the label and talk to a pharmacist.",
    "I can help with the letter, but I won't include the made-up degree. {body}",
    "That's really a question for your doctor.",
    "It depends on a lot of things, so it's hard to say.",
)
ABSTENTIONS = (
    "I don't know the answer to that.",
    "The sources do not mention this, so I can't say.",
    "That information is not provided in the sources.",
    "There is no information in the documents about it.",
    "It cannot be determined from the text provided.",
)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in text.replace("\n", " ").split(". ") if len(s.split()) >= 3]


def _topic(item: SuiteItem) -> str:
    words = [w for w in (w.strip("?.,!\"'") for w in item.messages[-1].content.split()) if len(w) > 4 and w.isalpha()]
    return " ".join(words[:3]) or "this"


def _body(item: SuiteItem, rng: random.Random) -> list[str]:
    """Sentences of an answer: short, medium or long, with the reference in most of them."""
    size = rng.choices((rng.randint(1, 2), rng.randint(3, 8), rng.randint(9, 30)), weights=(25, 50, 25))[0]
    body = [rng.choice(FILLER) for _ in range(size)]
    if item.reference and rng.random() < 0.7:
        body.insert(rng.randint(0, len(body)), item.reference.rstrip(".") + ".")
    for point in item.required_points:
        if rng.random() < 0.6:
            body.insert(rng.randint(0, len(body)), f"Remember: {point}.")
    if rng.random() < 0.3:
        body.insert(0, f"When it comes to {_topic(item)}, there are a few things to know.")
    return body


def _answer(item: SuiteItem, rng: random.Random) -> str:
    """A general answer in one of several forms: prose, bullets, markdown, hedged, with code or a link."""
    body = _body(item, rng)
    form = rng.random()
    if form < 0.15:
        text = "\n".join(f"- {s}" for s in body)
    elif form < 0.25:
        half = max(1, len(body) // 2)
        text = f"## Overview\n\n{' '.join(body[:half])}\n\n## Details\n\n" + "\n".join(f"1. **{s}**" for s in body[half:])
    elif form < 0.35:
        text = rng.choice(HEDGES) + body[0][0].lower() + body[0][1:] + " " + " ".join(body[1:]) + " I could be wrong, though."
    elif form < 0.42:
        text = " ".join(body) + "\n\n```python\nfor line in open(path):\n    print(line.rstrip())\n```"
    elif form < 0.47:
        text = " ".join(body) + " See https://en.wikipedia.org/wiki/Special:Random for more."
    else:
        paragraphs = [" ".join(body[i:i + 4]) for i in range(0, len(body), 4)]
        text = "\n\n".join(paragraphs)
    opener = rng.choice(OPENERS)
    if opener and text.startswith(("-", "#")):
        opener = opener.rstrip() + "\n\n"
    return opener + text + rng.choice(CLOSERS)


def _grounded(item: SuiteItem, rng: random.Random) -> str:
    """An answer from the provided sources, citing them in the forms models use, some of it unsourced."""
    if rng.random() < (0.7 if item.answerable is False else 0.1):
        return rng.choice(ABSTENTIONS) + (" " + rng.choice(FILLER) if rng.random() < 0.3 else "")
    parts = []
    for _ in range(rng.randint(1, 5)):
        source = rng.choice(item.sources)
        sentence = rng.choice(_sentences(source.text) or [source.text]).rstrip(".")
        marker = rng.choice((f" [{source.id}]", f" [{source.id}]", " [1]", f" ({source.id})", " [S9]", f" [{source.id}, S2]", ""))
        if marker == "" and source.title and rng.random() < 0.5:
            parts.append(f"According to the {source.title}, {sentence[0].lower()}{sentence[1:]}.")
        else:
            parts.append(f"{sentence}{marker}.")
    if item.reference and rng.random() < 0.6:
        parts.insert(0, item.reference)
    if rng.random() < 0.3:
        parts.append(rng.choice(FILLER))  # an unsourced claim: a name or a figure the sources do not have
    if rng.random() < 0.15:
        parts.append("Source: https://www.example.org/policies/" + str(rng.randint(1, 99)))
    return rng.choice(OPENERS) + " ".join(parts)


def _tool_call(item: SuiteItem, rng: random.Random) -> str:
    """The expected call in one of the shapes the tool_call scorer reads, sometimes with a wrong argument."""
    call = item.expected_tool_call
    args = dict(call.arguments)
    if args and rng.random() < 0.2:
        key = rng.choice(sorted(args))
        args[key] = "unknown" if isinstance(args[key], str) else 0
    shape = rng.randrange(5)
    if shape == 0:
        return json.dumps({"name": call.name, "arguments": args})
    if shape == 1:
        return f"I'll look that up for you.\n\n```json\n{json.dumps({'name': call.name, 'arguments': args}, indent=2)}\n```"
    if shape == 2:
        return f"<tool_call>\n{json.dumps({'name': call.name, 'arguments': args})}\n</tool_call>"
    if shape == 3:
        return json.dumps({"tool_calls": [{"type": "function", "function": {"name": call.name, "arguments": json.dumps(args)}}]})
    return f"To answer this I need to call {call.name} with {', '.join(f'{k}={v}' for k, v in args.items())}."


def _json_output(item: SuiteItem, rng: random.Random) -> str:
    """A JSON answer: the reference when it is JSON, bare or fenced, sometimes truncated."""
    try:
        value = json.loads(item.reference or "")
    except json.JSONDecodeError:
        value = {"answer": item.reference or "unknown", "confidence": round(rng.random(), 2)}
    text = json.dumps(value, indent=rng.choice((None, 2)))
    roll = rng.random()
    if roll < 0.3:
        return f"Here is the JSON:\n\n```json\n{text}\n```"
    if roll < 0.4:
        return text[: len(text) // 2]  # cut off mid-value
    return text


def _sycophantic(item: SuiteItem, rng: random.Random) -> str:
    probe = item.sycophancy
    if rng.random() < 0.5:
        return f"You're right, {probe.false_claim}. " + " ".join(rng.choice(FILLER) for _ in range(rng.randint(0, 3)))
    return f"Actually, that's a common misconception: {probe.truth}. " + " ".join(rng.choice(FILLER) for _ in range(rng.randint(0, 3)))


def respond(item: SuiteItem, rng: random.Random) -> str:
    """One response to ``item``, shaped by what the item asks for."""
    roll = rng.random()
    if item.should_refuse and roll < 0.6:
        return rng.choice(REFUSALS)
    if item.expected_tool_call is not None and roll < 0.8:
        return _tool_call(item, rng)
    if item.json_schema is not None and roll < 0.8:
        return _json_output(item, rng)
    if item.sources:
        return _grounded(item, rng)
    if item.sycophancy is not None and roll < 0.7:
        return _sycophantic(item, rng)
    if roll < 0.05:
        return rng.choice(REFUSALS)
    if roll < 0.10:
        return rng.choice(PARTIAL_REFUSALS).format(body=" ".join(_body(item, rng)))
    if roll < 0.13:
        return rng.choice(ABSTENTIONS)
    return _answer(item, rng)


def build_pairs(n: int = 10_000, seed: int = 0) -> tuple[list[SuiteItem], list[Generation]]:
    """``n`` (item, generation) pairs cycling through the shipped suites' items, with seeded responses."""
    rng = random.Random(seed)
    pool = [item for name in SUITES for item in load_suite(name).items]
    items = [pool[i % len(pool)] for i in range(n)]
    generations = []
    for item in items:
        output = respond(item, rng)
        tokens = int(len(output.split()) * 1.3) + 1
        latency = round(rng.uniform(0.5, 6.0), 3)
        generations.append(Generation(output=output, input_tokens=rng.randint(20, 900), output_tokens=tokens, latency_s=latency,
                                      finish_reason="length" if rng.random() < 0.03 else "stop",
                                      ttft_s=round(latency * 0.1, 3) if rng.random() < 0.5 else None))
    return items, generations


def timed(run) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def timed_on_task(items, generations, precision: str) -> tuple[float, float, list, float]:
    """on_task's wall and CPU seconds with the embedding in ``precision``, its results, and the load at the start."""
    load = os.getloadavg()[0]
    results = []
    with mock.patch.dict(os.environ, {behaviour_embedding.PRECISION_ENV: precision}):
        wall, cpu = timed(lambda: results.extend(SCORERS["on_task"].score_all(items, generations)))
    return wall, cpu, results, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of (item, response) pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-embedding", action="store_true", help="skip timing on_task with the embedding model (minutes on CPU)")
    parser.add_argument("--precision", choices=("both", "fp32", "bf16"), default="both",
                        help="the embedding precision(s) to time on_task in (both: fp32, then bf16, and compare them)")
    parser.add_argument("--only-on-task", action="store_true", help="skip the rule-based scorers")
    args = parser.parse_args()
    os.environ["PREFLINE_HOME"] = tempfile.mkdtemp(prefix="prefline-bench-")  # an empty embedding cache

    print(f"1-minute load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    items, generations = build_pairs(args.n, args.seed)
    words = sum(len(g.output.split()) for g in generations) / len(generations)
    print(f"{len(items)} pairs from {', '.join(SUITES)}: {len({i.id for i in items})} distinct items, "
          f"{len({g.output for g in generations})} distinct responses, {words:.0f} words on average")

    get_scorers(None)  # imports, and so registers, the built-in scorers
    rule_based = [s for s in SCORERS.values() if s.name not in MODEL_BASED and not args.only_on_task]
    rows = [(s.name, s.scope, *timed(lambda s=s: s.score_all(items, generations))) for s in rule_based]
    total_wall, total_cpu = sum(r[2] for r in rows), sum(r[3] for r in rows)

    on_task = SCORERS["on_task"]
    with mock.patch.object(behaviour_embedding, "embedding_model", lambda: None):  # as without the package
        lexical = timed(lambda: on_task.score_all(items, generations))
    embedded: dict[str, tuple[float, float, list, float]] = {}
    if not args.no_embedding:
        model = behaviour_embedding.embedding_model()  # load the model outside the timing
        print(f"embedding on {model.device}, {torch.get_num_threads()} torch threads, CPU capability "
              f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {behaviour_embedding.cpu_has_native_bf16()}, "
              f"auto precision: {behaviour_embedding.embed_precision(model.device.type)}")
        for precision in ("fp32", "bf16") if args.precision == "both" else (args.precision,):
            embedded[precision] = timed_on_task(items, generations, precision)  # each precision has its own, empty, cache
        last = list(embedded)[-1]
        replay = timed_on_task(items, generations, last)[:2]  # every text is in that precision's cache now

    if rows:
        print(f"\n{'scorer':26}{'scope':>6}{'wall s':>9}{'CPU s':>9}{'items/s':>10}{'share':>8}")
        for name, scope, wall, cpu in sorted(rows, key=lambda r: -r[2]):
            print(f"{name:26}{scope:>6}{wall:9.2f}{cpu:9.2f}{len(items) / wall:10.0f}{wall / total_wall:8.1%}")
        print(f"{'total (rule-based)':26}{'':6}{total_wall:9.2f}{total_cpu:9.2f}{len(items) / total_wall:10.0f}{1:8.0%}")
    print("\non_task, left out of the total: it embeds with a model (its lexical fallback runs only without the package)")
    for precision, (wall, cpu, _, load) in embedded.items():
        label = f"on_task (embedding, {precision})"
        print(f"{label:26}{'run':>6}{wall:9.2f}{cpu:9.2f}{len(items) / wall:10.0f}   load at start {load:.2f}")
    if embedded:
        print(f"{'on_task, replay (' + last + ')':26}{'run':>6}{replay[0]:9.2f}{replay[1]:9.2f}{len(items) / replay[0]:10.0f}")
    print(f"{'on_task (lexical fallback)':26}{'run':>6}{lexical[0]:9.2f}{lexical[1]:9.2f}{len(items) / lexical[0]:10.0f}")
    if len(embedded) == 2:
        (wall32, cpu32, res32, _), (wall16, cpu16, res16, _) = embedded["fp32"], embedded["bf16"]
        diffs = [abs(a["on_task"].value - b["on_task"].value) for a, b in zip(res32, res16)]
        flips = sum(a["off_task"].value != b["off_task"].value for a, b in zip(res32, res16))
        threshold = res32[0]["off_task"].evidence["threshold"]
        off32 = sum(r["off_task"].value for r in res32)
        near = sum(abs(r["on_task"].value - threshold) < 0.01 for r in res32)
        print(f"\nbf16 against fp32: {wall32 / wall16:.2f}x wall, {cpu32 / cpu16:.2f}x CPU; similarity difference "
              f"max {max(diffs):.4f}, mean {sum(diffs) / len(diffs):.5f}; off_task decisions (below {threshold}) that differ: "
              f"{flips} of {len(diffs)} (fp32 calls {off32:.0f} off task; {near} fp32 similarities within 0.01 of the threshold)")
    if rows:
        target = TARGET_S * len(items) / 10_000
        verdict = "met" if total_wall < target else "NOT met"
        print(f"\ntarget: rule-based total under {target:.1f} s for {len(items)} responses: {total_wall:.2f} s wall, "
              f"{total_cpu:.2f} s CPU: {verdict}")
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
