"""IFEval's 25 instruction types on responses written here: each type follows IFEval's semantics,
strict and loose; suite items carry IFEval instructions; ``prefline suite import-ifeval``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prefline.cli import app
from prefline.evals.backends import Generation
from prefline.evals.scorers import SCORERS, get_scorers
from prefline.evals.scorers.behaviour_ifeval import IFEVAL_TYPES, capital_words, count_sentences, ifeval_loose_variants
from prefline.evals.scorers.behaviour_instructions import INSTRUCTIONS, check_instruction, param_problems
from prefline.evals.suite import SuiteItem, load_suite

get_scorers(["length"])
runner = CliRunner()

# IFEval id -> (kwargs, a response that follows it, one that does not)
CASES = {
    "change_case:capital_word_frequency": ({"capital_frequency": 3, "capital_relation": "at least"},
                                           "The NASA and ESA teams met the JAXA crew.", "The NASA team met the crew."),
    "change_case:english_capital": ({}, "THE RIVER RUNS THROUGH THE OLD TOWN AND INTO THE SEA.", "The river runs through the old town."),
    "change_case:english_lowercase": ({}, "the river runs through the old town and into the sea.", "The river runs through the old town."),
    "combination:repeat_prompt": ({"prompt_to_repeat": "Write a haiku about rain."},
                                  "write a haiku about rain. Soft rain on the roof...", "Here is a haiku about rain: soft rain."),
    "combination:two_responses": ({}, "Tea is calming.\n******\nCoffee wakes you up.", "Tea is calming.\n******\nTea is calming."),
    "detectable_content:number_placeholders": ({"num_placeholders": 2}, "Send it to [name] at [address].", "Send it to [name] soon."),
    "detectable_content:postscript": ({"postscript_marker": "P.P.S"}, "See you soon.\n\nP.P.S bring snacks", "See you soon.\n\nP.S. bring snacks"),
    "detectable_format:constrained_response": ({}, "My answer is maybe.", "My answer is perhaps."),
    "detectable_format:json_format": ({}, '```json\n{"city": "Oslo"}\n```', 'City: {"city": "Oslo"}'),
    "detectable_format:multiple_sections": ({"section_spliter": "Section", "num_sections": 2},
                                            "Section 1\nPlanning.\nSection 2\nDoing.\nSection 3\nReview.", "Section 1\nPlanning only."),
    "detectable_format:number_bullet_lists": ({"num_bullets": 2}, "* apples\n- pears", "* apples\n* pears\n* plums\n* figs\n* kiwis"),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2}, "A *first* and a **second** highlight.", "Only *one* here."),
    "detectable_format:title": ({}, "<<A Quiet Morning>>\nThe kettle hums.", "<< >>\nThe kettle hums."),
    "keywords:existence": ({"keywords": ["harbor", "gull"]}, "A gull circled the harbor.", "A gull circled the bay."),
    "keywords:forbidden_words": ({"forbidden_words": ["storm"]}, "The stormy night ended.", "The storm ended."),
    "keywords:frequency": ({"keyword": "lamp", "frequency": 3, "relation": "less than"}, "One lamp, two lamps.", "Lamp, lamp, lamplight."),
    "keywords:letter_frequency": ({"letter": "q", "let_frequency": 2, "let_relation": "at least"}, "Quiet quilts.", "A quiet room."),
    "language:response_language": ({"language": "de"}, "Der Zug fährt heute um acht Uhr vom Hauptbahnhof ab.",
                                   "The train leaves the main station at eight today."),
    "length_constraints:nth_paragraph_first_word": ({"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "finally"},
                                                    "We started early.\n\n\"Finally, we arrived.", "We started early.\n\nThen we arrived."),
    "length_constraints:number_paragraphs": ({"num_paragraphs": 2}, "First part.\n***\nSecond part.", "First part.\n\nSecond part."),
    "length_constraints:number_sentences": ({"num_sentences": 3, "relation": "less than"},
                                            "Dr. Lee met Mr. Park at 3.5 km. They walked.", "One. Two. Three."),
    "length_constraints:number_words": ({"num_words": 5, "relation": "at least"}, "It's a well-known fact, friend.", "Too short."),
    "punctuation:no_comma": ({}, "Salt and pepper and oil.", "Salt, pepper and oil."),
    "startend:end_checker": ({"end_phrase": "Any other questions?"}, '"That is all. Any other questions?"', "Any other questions? No."),
    "startend:quotation": ({}, '  "Wrapped in quotes."  ', "“Curly quotes are not IFEval's.”"),
}


def test_all_25_types_are_registered_and_tested():
    assert len(IFEVAL_TYPES) == 25 and set(IFEVAL_TYPES) <= set(INSTRUCTIONS)
    assert set(CASES) == set(IFEVAL_TYPES)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_follows_and_breaks(kind):
    kwargs, good, bad = CASES[kind]
    assert not param_problems(kind, kwargs)
    ok = check_instruction(kind, kwargs, good)
    assert ok["strict"] and ok["loose"], ok
    ko = check_instruction(kind, kwargs, bad)
    assert not ko["strict"] and not ko["loose"], ko
    assert ko["why"]


def test_ifeval_quirks_are_kept():
    # keywords are regular expressions matched anywhere; forbidden words only on word boundaries
    assert check_instruction("keywords:existence", {"keywords": ["cat"]}, "Concatenate it.")["strict"]
    assert check_instruction("keywords:forbidden_words", {"forbidden_words": ["cat"]}, "Concatenate it.")["strict"]
    # "less than" is strict: 3 occurrences is not less than 3
    assert not check_instruction("keywords:frequency", {"keyword": "a", "frequency": 3, "relation": "less than"}, "a a a")["strict"]
    # sections: at least N, and the splitter is case-sensitive
    assert check_instruction("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 1}, "SECTION 1 a SECTION 2 b")["strict"]
    assert not check_instruction("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 1}, "Section 1 a")["strict"]
    # *** paragraphs: an empty paragraph in the middle fails, empty ends are ignored
    assert not check_instruction("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "a\n***\n***\nb")["strict"]
    assert check_instruction("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "***\na\n***\nb\n***")["strict"]
    # a bold line is not a bullet; a "-" line is
    assert check_instruction("detectable_format:number_bullet_lists", {"num_bullets": 1}, "**Bold**\n- item")["strict"]
    # an undetectable language counts as followed, as in IFEval
    assert check_instruction("language:response_language", {"language": "fr"}, "1234 5678")["strict"]
    # P.S. tolerates one space after a period, anywhere in a line
    assert check_instruction("detectable_content:postscript", {"postscript_marker": "P.S."}, "Thanks.\np. s. see you")["strict"]
    # end checker ignores surrounding double quotes; quotation needs straight quotes
    assert check_instruction("startend:end_checker", {"end_phrase": "Bye."}, '"See you. Bye."')["strict"]


def test_counting_helpers():
    assert count_sentences("Dr. Smith went home. He saw e.g. a cat. It cost 3.5 dollars! Really? Yes.") == 5
    assert capital_words("The USA and the EU met. OK?") == 3  # USA, EU, OK; punctuation is its own token


def test_loose_uses_ifevals_variants():
    text = "Sure!\n*body*\nBye"
    assert ifeval_loose_variants(text) == [text, "Sure!\nbody\nBye", "*body*\nBye", "Sure!\n*body*", "*body*",
                                           "body\nBye", "Sure!\nbody", "body"]
    wrapped = "Sure, here it is:\n\"Just this.\""  # the first line keeps it from being wrapped in quotes
    result = check_instruction("startend:quotation", {}, wrapped)
    assert not result["strict"] and result["loose"]
    # IFEval removes only "*": underscores are not forgiven (prefline's own types forgive "__")
    assert not check_instruction("punctuation:no_comma", {}, "a, b")["loose"]
    assert not check_instruction("startend:quotation", {}, '__"x"__')["loose"]


def test_empty_response_fails_every_ifeval_type():
    for kind, (kwargs, _, _) in CASES.items():
        result = check_instruction(kind, kwargs, "   ")
        assert not result["strict"] and not result["loose"], kind


def test_param_problems_name_the_ifeval_kwarg():
    assert param_problems("length_constraints:number_words", {"num_words": 10, "relation": "at most"}) == [
        "param 'relation' must be one of 'less than' or 'at least', got 'at most'"]
    assert "missing param 'num_bullets'" in param_problems("detectable_format:number_bullet_lists", {})
    assert "is matched as a regular expression" in param_problems("keywords:existence", {"keywords": ["(unclosed"]})[0]


def _gen(text):
    return Generation(output=text, input_tokens=3, output_tokens=5, latency_s=0.1, finish_reason="stop")


def test_suite_item_with_ifeval_instructions_is_scored():
    item = SuiteItem(id="i", messages=[{"role": "user", "content": "q"}],
                     constraints=[{"type": "max_words", "params": {"n": 20}}],
                     instruction_id_list=["punctuation:no_comma", "detectable_format:title"],
                     kwargs=[{}, {"unused": None}])  # null kwargs are ignored, as in IFEval
    scores = {m: s.value for m, s in SCORERS["instructions"].fn(item, _gen("<<Title>>\nNo commas here.")).items()}
    assert scores == {"instruction_strict": 1.0, "instruction_loose": 1.0, "instruction_strict_rate": 1.0, "instruction_loose_rate": 1.0}
    evidence = SCORERS["instructions"].fn(item, _gen("Plain, with a comma.")).get("instruction_strict").evidence
    assert [r["type"] for r in evidence["instructions"]] == ["max_words", "punctuation:no_comma", "detectable_format:title"]
    assert [r["strict"] for r in evidence["instructions"]] == [True, False, False]
    with pytest.raises(ValueError, match="kwargs has 1 entries but instruction_id_list has 2"):
        SuiteItem(id="j", messages=[{"role": "user", "content": "q"}], instruction_id_list=["a", "b"], kwargs=[{}])


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")


def test_import_ifeval_writes_a_suite(tmp_path):
    source = tmp_path / "input_data.jsonl"
    _write(source, [
        {"key": 1, "prompt": "Describe a lighthouse without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"key": 2, "prompt": "Write two paragraphs about [tides].", "instruction_id_list": ["length_constraints:number_paragraphs", "startend:quotation"],
         "kwargs": [{"num_paragraphs": 2, "first_word": None}, {}], "response": "an answer"},
    ])
    out = tmp_path / "suite"
    result = runner.invoke(app, ["suite", "import-ifeval", str(source), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["items"] == 2 and summary["instructions"] == {"length_constraints:number_paragraphs": 1, "punctuation:no_comma": 1, "startend:quotation": 1}
    assert "response (1 rows)" in summary["note"] and "response (1 rows)" in result.stderr
    suite = load_suite(str(out))
    assert suite.scorers == ["instructions"] and [i.id for i in suite.items] == ["ifeval-1", "ifeval-2"]
    assert suite.items[1].instructions() == [("length_constraints:number_paragraphs", {"num_paragraphs": 2}), ("startend:quotation", {})]
    assert suite.items[1].messages[0].content == "Write two paragraphs about [tides]."


def test_import_ifeval_reports_every_bad_line(tmp_path):
    source = tmp_path / "bad.jsonl"
    _write(source, [
        "{not json",
        {"key": 1, "prompt": "p", "instruction_id_list": ["no_such:type"], "kwargs": [{}]},
        {"key": 2, "prompt": "p", "instruction_id_list": ["keywords:frequency"], "kwargs": [{"keyword": "x", "frequency": 2}]},
        {"key": 3, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": []},
        {"key": 1, "prompt": "p", "instruction_id_list": [], "kwargs": []},
    ])
    result = runner.invoke(app, ["suite", "import-ifeval", str(source), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line
    for fragment in ("bad.jsonl:1: not valid JSON", "bad.jsonl:2: instruction 0 (no_such:type): unknown instruction type",
                     "bad.jsonl:3: instruction 0 (keywords:frequency): missing param 'relation'",
                     "bad.jsonl:4: kwargs must be a list of 1 objects", "bad.jsonl:5: key 1 repeats line 2"):
        assert fragment in line, line
    assert not (tmp_path / "s").exists()


def test_suite_validate_rejects_bad_ifeval_kwargs(tmp_path):
    (tmp_path / "suite.yaml").write_text("name: t\nversion: 1\nitems: items.jsonl\n")
    _write(tmp_path / "items.jsonl", [{"id": "a", "messages": [{"role": "user", "content": "q"}],
                                       "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": -1, "relation": "at least"}]}])
    result = runner.invoke(app, ["suite", "validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "items.jsonl:1: item a: instruction_id_list[0] (length_constraints:number_words): param 'num_words' must be a non-negative integer" in result.output
