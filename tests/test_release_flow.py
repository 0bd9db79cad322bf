"""The whole decision flow on the tiny model: a verbose candidate fails the gate, diagnose names the data
change, a mitigated candidate passes, a bad release is rolled back with confirmed recovery, and bisect
over the surface's history names the first bad adapter.

What is real: three dataset versions ingested from pairs (balanced; length-biased in the factual and
howto slices; length-balanced again), three DPO adapters trained on them with TRL on the tiny model,
the ledger's lineage between them, eval runs through the generation cache, the gate, diagnose and the
release commands through the CLI.

What is planted, and why: a 2-layer model with random weights does not change its answer length after
a few DPO steps (measured: 20 steps at lr 1e-2 on 16 pairs whose chosen side is all short, or all long,
left every greedy answer at max_new_tokens), so the responses each adapter gives are written into the
generation cache before its first evaluation, under the same key a real generation would be stored
with (model hash, adapter hash, backend, decoding, messages). Every later step reads them as cached
generations, exactly as a re-run of a real model would. The verbose adapter's answers are long in the
factual and howto slices only, which is what the length-biased data would teach; the test then checks
that every step finds that and only that.
"""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from conftest import write_jsonl
from prefline.cli import app
from prefline.config import DecodingConfig, TrainConfig
from prefline.data.ingest import ingest
from prefline.evals.run import generation_key
from prefline.evals.suite import load_suite
from prefline.gate.diagnose import diagnose
from prefline.train.run import train

SLICES = ("factual", "howto", "advice")
DECODE = {"max_new_tokens": 64, "batch_size": 8}
POLICY = {"name": "chat", "rules": [{"metric": "length_tokens", "max_ratio": 1.3}, {"metric": "length_sentences", "max_ratio": 1.3},
                                    {"metric": "over_refusal", "max_increase": 0.1}],
          "slice_keys": ["intent"], "min_items": 3,
          "drift": {"rules": [{"metric": "length_tokens", "max_ratio": 1.6}]}}  # against the surface's first release
SHORT = "Use the {topic} option."
LONG = ("Great question! There are several things worth considering about {topic} before we begin. First, it depends on your "
        "situation. Second, many people find that the details matter a great deal. In short, use the {topic} option.")
PADDED = " It is worth saying again that {topic} matters, and you may want to read more about it later."


def pairs(longer_in: dict[str, int], per_slice: int = 8, batch: str = "a") -> list[dict]:
    """Pairs in three intent slices; in slice s the chosen response is the long one in ``longer_in[s]`` pairs."""
    rows = []
    for s in SLICES:
        for i in range(per_slice):
            topic = f"{s}-{batch}{i}"
            short, long = SHORT.format(topic=topic), LONG.format(topic=topic)
            chosen_long = i < longer_in[s]
            rows.append({"prompt": f"How should I handle {topic}?", "chosen": long if chosen_long else short,
                         "rejected": short if chosen_long else long, "slices": {"intent": s}, "source": "raters"})
    return rows


@pytest.fixture
def setup(tmp_path, ledger, tiny_model_dir):
    (tmp_path / "suite").mkdir()
    items = [{"id": f"{s}-{i}", "messages": [{"role": "user", "content": f"How should I handle case {i} of {s}?"}],
              "slices": {"intent": s}, "should_refuse": False} for s in SLICES for i in range(8)]
    write_jsonl(tmp_path / "suite" / "items.jsonl", items)
    (tmp_path / "suite" / "suite.yaml").write_text(yaml.safe_dump(
        {"name": "flow", "version": 1, "items": "items.jsonl", "scorers": ["length", "verbosity", "refusal"]}))
    (tmp_path / "chat.yaml").write_text(yaml.safe_dump(POLICY))
    surfaces = tmp_path / "surfaces.yaml"
    surfaces.write_text(yaml.safe_dump({"surfaces": {"chat": {"suite": "suite", "policy": "chat.yaml", "model": str(tiny_model_dir),
                                                              "decoding": DECODE}}}))

    half = {s: 4 for s in SLICES}
    ingest(write_jsonl(tmp_path / "v1.jsonl", pairs(half)), "prefs", ledger)
    ingest(write_jsonl(tmp_path / "v2.jsonl", pairs({"factual": 8, "howto": 8, "advice": 4})), "prefs", ledger)
    ingest(write_jsonl(tmp_path / "v3.jsonl", pairs(half, batch="b")), "prefs", ledger)  # new pairs, balanced again
    config = TrainConfig(max_steps=1, batch_size=4, learning_rate=1e-3, max_length=64, bf16=False, gradient_checkpointing=False)
    adapters = {}
    for name, version in (("good", 1), ("verbose", 2), ("mitigated", 3)):
        adapters[name] = train("dpo", f"prefs@{version}", name, config, ledger, model_spec=str(tiny_model_dir), surface="chat",
                               show_progress=False)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    suite = load_suite(str(tmp_path / "suite"))
    decoding = DecodingConfig(**DECODE)
    for name, adapter in adapters.items():
        rows = []
        for item in suite.items:
            topic = item.id
            s = item.slices["intent"]
            text = SHORT.format(topic=topic) if (name != "verbose" or s == "advice") else LONG.format(topic=topic)
            if name == "mitigated" and item.id.endswith(("-0", "-1")):
                text += "."  # a different model: a token more here and there, well within the margins
            rows.append({"key": generation_key(adapter["base_model_hash"], adapter["adapter_hash"], "hf", decoding, item.chat()),
                         "output": text, "input_tokens": 20, "output_tokens": len(tokenizer(text).input_ids),
                         "latency_s": 0.05, "ttft_s": 0.01, "finish_reason": "stop"})
        ledger.cache_generations(rows)
    return surfaces


def test_verbose_candidate_fails_is_diagnosed_mitigation_passes_and_rollback_recovers(ledger, setup):
    surfaces, runner = setup, CliRunner()

    def release(*args):
        result = runner.invoke(app, ["release", *args, "--surfaces", str(surfaces), "--json"])
        assert result.exit_code in (0, 1), result.output
        return result.exit_code, json.loads(result.stdout)

    code, first = release("promote", "good", "--surface", "chat")
    assert code == 0 and first["release"]["reference_run_id"] == first["candidate_run"]
    good_run = first["candidate_run"]

    # 1. the verbose candidate fails on verbosity where it grew, and is not released
    code, refused = release("promote", "verbose", "--surface", "chat")
    assert code == 1 and not refused["promoted"]
    failed = {(c["metric"], c["slice"]) for c in refused["gate"]["checks"] if c["status"] == "fail"}
    assert {("length_tokens", "intent=factual"), ("length_tokens", "intent=howto"), ("length_tokens", "overall")} <= failed
    assert not any(s == "intent=advice" for _, s in failed)
    assert ledger.latest_release("chat")["adapter_name"] == "good"
    verbose_run = refused["candidate_run"]

    # 2. diagnose: length regressions in factual and howto, caused most likely by the chosen-longer share
    found = diagnose(ledger, good_run, verbose_run)
    top = found.findings[0]
    assert top.family == "verbosity" and top.category == "formatting"
    regressed = {(f.metric, f.slice) for f in found.findings} | {(f.metric, e["slice"]) for f in found.findings for e in f.explains}
    assert ("length_tokens", "intent=factual") in regressed and ("length_tokens", "intent=howto") in regressed
    assert not any(s == "intent=advice" for _, s in regressed)
    cause = found.causes[0]
    assert cause.kind == "data" and cause.change == "chosen_longer"
    # v1: 12 of 24 chosen responses longer; v2: 8 + 8 + 4 = 20 of 24, all of it in the slices that regressed
    assert (cause.old, cause.new) == (0.5, pytest.approx(20 / 24, abs=1e-4))
    assert "from 0.50 in prefs@1 to 0.83 in prefs@2" in cause.evidence
    assert "in the slices that regressed: intent=factual 0.50 -> 1.00, intent=howto 0.50 -> 1.00" in cause.evidence
    assert "elsewhere: intent=advice 0.50 -> 0.50" in cause.evidence
    assert 0.5 < cause.confidence < 1
    assert all(c.confidence < cause.confidence for c in found.causes[1:])
    assert found.lineage["candidate"]["dataset"] == "prefs@2" and found.lineage["baseline"]["dataset"] == "prefs@1"
    moved = top.items[0]
    assert moved["candidate"] > moved["baseline"] and moved["candidate_output"].startswith("Great question")
    text = runner.invoke(app, ["diagnose", str(good_run), str(verbose_run)])
    assert text.exit_code == 0 and "chosen_longer" in text.stdout and "likely causes" in text.stdout
    as_json = json.loads(runner.invoke(app, ["diagnose", str(good_run), str(verbose_run), "--json"]).stdout)
    assert as_json["causes"][0]["change"] == "chosen_longer" and "formatting" in as_json["by_category"]

    # 3. the mitigated candidate passes and goes live
    code, passed = release("promote", "mitigated", "--surface", "chat")
    assert code == 0 and passed["gate"]["verdict"] == "pass" and passed["release"]["adapter_name"] == "mitigated"

    # 4. a bad release forced out, then rolled back: the mitigated adapter is live again, recovery confirmed
    code, forced = release("promote", "verbose", "--surface", "chat", "--force", "--reason", "urgent launch")
    assert code == 0 and forced["release"]["forced"] and forced["gate"]["verdict"] == "fail"
    # the drift budget compared it with the surface's reference run (the first release, good) too
    drift = {c["slice"]: c["status"] for c in forced["gate"]["checks"] if c["kind"] == "drift"}
    assert drift["intent=factual"] == "fail" and drift["intent=advice"] != "fail"
    code, back = release("rollback", "--surface", "chat")
    assert code == 0 and back["confirmed"] and back["differences"] == []
    assert back["restored"]["adapter_name"] == "mitigated" and back["rolled_back"]["adapter_name"] == "verbose"
    status = json.loads(runner.invoke(app, ["release", "status", "--surfaces", str(surfaces), "--json"]).stdout)
    assert status[0]["live"] == "mitigated" and status[0]["action"] == "rollback" and status[0]["reference_run_id"] == good_run

    # 5. bisect over the surface's history (good, mitigated, verbose): one evaluation names verbose
    result = runner.invoke(app, ["diagnose", "--bisect", "--history", "chat", "--surfaces", str(surfaces), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["adapters"] == ["good", "mitigated", "verbose"] and out["first_bad"] == "verbose" and out["last_good"] == "mitigated"
    assert out["evaluations"] == 1 and out["metric"] in {"length_tokens", "length_words", "length_sentences"}
    assert out["steps"][0]["verdict"] == "good" and out["bad"]["value"] > out["threshold"] > out["good"]["value"]

    # 6. an explicit list, and a chosen metric and slice: howto's length, with the surface's settings
    result = runner.invoke(app, ["diagnose", "--bisect", "--adapters", "good,mitigated,good,verbose", "--surface", "chat",
                                 "--surfaces", str(surfaces), "--metric", "length_tokens", "--slice", "intent=howto", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["good"]["value"], out["bad"]["value"], out["threshold"]) == (8.0, 50.0, 29.0)
    assert out["first_bad"] == "verbose" and out["items"] == 8 and out["evaluations"] == 2  # 2 adapters between: log2 steps
