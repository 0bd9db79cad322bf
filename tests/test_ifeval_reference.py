"""prefline's IFEval checks against the reference implementation (lm-eval's ``lm_eval/tasks/ifeval``,
Apache-2.0), where that package is installed: the same verdicts, strict and loose, on the responses
written in ``tests/test_ifeval.py`` and on a few more that exercise each type's edge cases.

lm-eval is not a prefline dependency, and its sentence and word tokenizers need NLTK's Punkt data,
which it downloads: without that data the two types that use them are left out here.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from prefline.evals.scorers.behaviour_instructions import check_instruction

spec = importlib.util.find_spec("lm_eval")
if spec is None or spec.submodule_search_locations is None:
    pytest.skip("lm-eval is not installed: nothing to compare with", allow_module_level=True)

from test_ifeval import CASES  # noqa: E402

NEEDS_PUNKT = {"length_constraints:number_sentences", "change_case:capital_word_frequency"}

EXTRA = [
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Intro\n  * one\n\n- two\n**bold** line"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 3}, "*a* **b** * * ** ** *c*\n*d"),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 3}, "SECTION 1 x SECTION2 y SECTION 3z"),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "***\none *** two\n***\nthree ***"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 3, "nth_paragraph": 3, "first_word": "end"},
     "a\n\n\n\nb\n\n'End, it is."),
    ("combination:two_responses", {}, "******\nOne.\n******\nTwo.\n******"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nPS: no"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nmaps. see"),
    ("detectable_format:json_format", {}, '```JSON\n[1, 2]\n```'),
    ("keywords:letter_frequency", {"letter": "E", "let_frequency": 3, "let_relation": "less than"}, "Eee"),
    ("startend:end_checker", {"end_phrase": "Bye"}, "ok bye\"\n"),
    ("keywords:existence", {"keywords": ["re.d"]}, "The rend."),
    ("detectable_format:title", {}, "<<<>>> and <<x>>"),
    ("change_case:english_lowercase", {}, "1234"),
]


def _reference():
    """lm-eval's ifeval modules, loaded by path: the package's own __init__ pulls in the whole harness."""
    root = Path(spec.submodule_search_locations[0])
    for name, folder in (("lm_eval", root), ("lm_eval.tasks", root / "tasks"), ("lm_eval.tasks.ifeval", root / "tasks" / "ifeval")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    import lm_eval.tasks.ifeval.utils as utils

    return utils


def _punkt_available() -> bool:
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab")
        nltk.data.find("tokenizers/punkt")
        return True
    except LookupError:
        return False


def _cases():
    for kind, (kwargs, good, bad) in sorted(CASES.items()):
        yield kind, kwargs, good
        yield kind, kwargs, bad
    yield from EXTRA


@pytest.mark.parametrize("kind,kwargs,response", list(_cases()))
def test_same_verdicts_as_the_reference(kind, kwargs, response):
    if kind in NEEDS_PUNKT and not _punkt_available():
        pytest.skip("the reference needs NLTK's Punkt data for this type")
    utils = _reference()
    example = utils.InputExample(key=0, instruction_id_list=[kind], prompt="prompt", kwargs=[kwargs])
    strict = utils.test_instruction_following_strict(example, response).follow_instruction_list[0]
    loose = utils.test_instruction_following_loose(example, response).follow_instruction_list[0]
    ours = check_instruction(kind, kwargs, response)
    assert (ours["strict"], ours["loose"]) == (strict, loose), ours
