"""IFEval's 25 verifiable instruction types, checked with IFEval's semantics (Zhou et al. 2023,
arXiv:2311.07911), registered under their IFEval ids (``length_constraints:number_words``) and
taking IFEval's keyword arguments (``num_words``, ``relation``).

Written for prefline from the published definitions; the decisions follow the reference checker
(Apache-2.0, ``lm_eval/tasks/ifeval``) case by case, including its quirks, because a figure is
only comparable with published IFEval figures if the same response gets the same verdict:

- keywords in ``keywords:existence`` and ``keywords:frequency`` are regular expressions matched
  anywhere (``"cat"`` counts inside ``"concatenate"``); forbidden words match on word boundaries;
- relations are ``less than`` (strictly fewer) and ``at least``;
- paragraphs are split at ``***`` (``number_paragraphs``) or at a blank line
  (``nth_paragraph_first_word``), and sections at the splitter word followed by a number;
- a response whose language cannot be detected passes the language checks, as in IFEval.

Strict checks the response as written (an empty response fails everything). Loose is IFEval's:
the instruction passes when any of eight variants passes, the response with its first line, last
line, both or neither removed, each with and without every ``*``.

Sentences are counted with NLTK's Punkt tokenizer. IFEval loads Punkt's trained English model,
which has to be downloaded; prefline runs Punkt offline with a list of common English
abbreviations written here instead, so a rare abbreviation may split a sentence where the trained
model would not (see docs/detectors.md for the measured agreement).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

# the parameter kinds IFEval shares with prefline's own types
from prefline.evals.scorers.behaviour_instructions import _count, _keywords, _text, instruction

IFEVAL_RELATIONS = ("less than", "at least")
CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


# --- IFEval's loose variants ----------------------------------------------------------------


def ifeval_loose_variants(text: str) -> list[str]:
    """The response, then the seven variants IFEval's loose accuracy also accepts."""
    lines = text.split("\n")
    trimmed = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [text, text.replace("*", ""), *trimmed, *(t.replace("*", "") for t in trimmed)]


# --- parameter kinds -------------------------------------------------------------------------


def _ifeval_relation(value: Any) -> str | None:
    if value not in IFEVAL_RELATIONS:
        return f"must be one of {' or '.join(repr(r) for r in IFEVAL_RELATIONS)}, got {value!r}"
    return None


def _one_character(value: Any) -> str | None:
    # IFEval replaces anything but a letter a-z with a random letter; prefline counts the
    # character given, so the same response always gets the same verdict.
    if not isinstance(value, str) or len(value.strip()) != 1:
        return f"must be one character, got {value!r}"
    return None


def _regex(value: Any) -> str | None:
    if problem := _text(value):
        return problem
    try:
        re.compile(value)
    except re.error as exc:
        return f"is matched as a regular expression, as in IFEval, and {value!r} is not one ({exc})"
    return None


def _regex_list(value: Any) -> str | None:
    if problem := _keywords(value):
        return problem
    return next((problem for v in value if (problem := _regex(v))), None)


def _holds(count: int, n: int, relation: str) -> bool:
    return count < n if relation == "less than" else count >= n


def _ifeval(name: str, **params):
    return instruction(name, loose=ifeval_loose_variants, **params)


# --- counting ----------------------------------------------------------------------------------

# Abbreviations a sentence does not end at (lowercase, without the final period), for Punkt.
ABBREVIATIONS = (
    "mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf al approx dept est fig no nos vol vols ed eds "
    "inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun "
    "u.s u.k u.n a.m p.m ph.d b.a m.a b.sc m.sc gen col capt lt sgt rev hon gov sen rep pres"
).split()


@lru_cache(maxsize=1)
def _sentence_tokenizer():
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    params = PunktParameters()
    params.abbrev_types = set(ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


def count_sentences(text: str) -> int:
    return len(_sentence_tokenizer().tokenize(text))


def count_words(text: str) -> int:
    return len(re.findall(r"\w+", text))


@lru_cache(maxsize=1)
def _word_tokenizer():
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def capital_words(text: str) -> int:
    """Words written in capitals, with Treebank tokenization (punctuation split off, hyphenated words kept whole)."""
    return sum(token.isupper() for sentence in _sentence_tokenizer().tokenize(text) for token in _word_tokenizer().tokenize(sentence))


def _language_is(text: str, code: str) -> tuple[bool, str]:
    from prefline.evals.scorers.behaviour_language import detect_language

    detected, how = detect_language(text)
    if detected is None:  # IFEval counts an undetectable language as followed
        return True, f"language not detectable ({how}): counted as followed, as in IFEval"
    return detected == code, f"detected {detected} ({how})"


# --- the 25 types ------------------------------------------------------------------------------


@_ifeval("change_case:capital_word_frequency", capital_frequency=_count, capital_relation=_ifeval_relation)
def capital_word_frequency(text, p):
    """Words in all capitals appear ``less than`` / ``at least`` capital_frequency times."""
    count = capital_words(text)
    return _holds(count, p["capital_frequency"], p["capital_relation"]), f"{count} all-capital words (required {p['capital_relation']} {p['capital_frequency']})"


@_ifeval("change_case:english_capital")
def english_capital(text, p):
    """The whole response is in English and in capital letters."""
    if not text.isupper():
        return False, "has lowercase letters" if re.search(r"[^\W\d_]", text) else "has no letters"
    return _language_is(text, "en")


@_ifeval("change_case:english_lowercase")
def english_lowercase(text, p):
    """The whole response is in English and in lowercase letters."""
    if not text.islower():
        return False, "has capital letters" if re.search(r"[^\W\d_]", text) else "has no letters"
    return _language_is(text, "en")


@_ifeval("combination:repeat_prompt", prompt_to_repeat=_text)
def repeat_prompt(text, p):
    """The response starts by repeating the request word for word (case and outer spaces ignored)."""
    ok = text.strip().lower().startswith(p["prompt_to_repeat"].strip().lower())
    return ok, "starts with the request" if ok else f"starts with {text.strip()[:40]!r}"


@_ifeval("combination:two_responses")
def two_responses(text, p):
    """Two different responses separated by ``******``, and nothing else between separators."""
    parts = text.split("******")
    inner_empty = any(not part.strip() for part in parts[1:-1])
    answers = [part for part in parts if part.strip()]
    if inner_empty:
        return False, "an empty response between two ****** separators"
    if len(answers) != 2:
        return False, f"{len(answers)} responses separated by ******"
    if answers[0].strip() == answers[1].strip():
        return False, "the two responses are the same"
    return True, "two different responses"


@_ifeval("detectable_content:number_placeholders", num_placeholders=_count)
def number_placeholders(text, p):
    """At least num_placeholders placeholders in square brackets, such as [address]."""
    count = len(re.findall(r"\[.*?\]", text))
    return count >= p["num_placeholders"], f"{count} [placeholders] (minimum {p['num_placeholders']})"


def _postscript_pattern(marker: str) -> str:
    marker = marker.strip()
    if marker == "P.P.S":
        return r"\s*p\.\s?p\.\s?s.*$"
    if marker == "P.S.":
        return r"\s*p\.\s?s\..*$"
    try:
        re.compile(marker.lower())
        return r"\s*" + marker.lower() + r".*$"
    except re.error:
        return r"\s*" + re.escape(marker.lower()) + r".*$"


@_ifeval("detectable_content:postscript", postscript_marker=_text)
def postscript(text, p):
    """A postscript starting with the marker (P.S. and P.P.S also match with a space after a period)."""
    found = re.search(_postscript_pattern(p["postscript_marker"]), text.lower(), re.MULTILINE)
    return bool(found), f"postscript {found.group(0).strip()[:40]!r}" if found else f"no {p['postscript_marker'].strip()!r} postscript"


@_ifeval("detectable_format:constrained_response")
def constrained_response(text, p):
    """Contains one of "My answer is yes.", "My answer is no.", "My answer is maybe."."""
    found = next((option for option in CONSTRAINED_RESPONSES if option in text.strip()), None)
    return bool(found), f"contains {found!r}" if found else "none of the allowed answers"


@_ifeval("detectable_format:json_format")
def json_format(text, p):
    """The whole response is JSON; a ``` or ```json fence around it is allowed."""
    body = text.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        if body.startswith(fence):
            body = body[len(fence):]
            break
    body = body.removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError as exc:
        return False, f"not JSON ({str(exc)[:60]})"
    return True, "parses as JSON"


@_ifeval("detectable_format:multiple_sections", section_spliter=_regex, num_sections=_count)
def multiple_sections(text, p):
    """At least num_sections sections, each starting with the splitter and a number (SECTION 1)."""
    splitter = p["section_spliter"].strip()
    count = len(re.split(r"\s?" + splitter + r"\s?\d+\s?", text)) - 1
    return count >= p["num_sections"], f"{count} sections marked {splitter!r} (minimum {p['num_sections']})"


@_ifeval("detectable_format:number_bullet_lists", num_bullets=_count)
def number_bullet_lists(text, p):
    """Exactly num_bullets markdown bullet points (lines starting with ``*`` or ``-``)."""
    count = len(re.findall(r"^\s*\*[^\*].*$", text, re.MULTILINE)) + len(re.findall(r"^\s*-.*$", text, re.MULTILINE))
    return count == p["num_bullets"], f"{count} bullet points (required {p['num_bullets']})"


@_ifeval("detectable_format:number_highlighted_sections", num_highlights=_count)
def number_highlighted_sections(text, p):
    """At least num_highlights non-empty *highlighted* (or **highlighted**) spans."""
    single = [h for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", text) if h[2:-2].strip()]
    count = len(single) + len(double)
    return count >= p["num_highlights"], f"{count} highlighted spans (minimum {p['num_highlights']})"


@_ifeval("detectable_format:title")
def ifeval_title(text, p):
    """A non-empty title in double angular brackets, such as <<poem of joy>>."""
    titles = [t for t in re.findall(r"<<[^\n]+>>", text) if t.lstrip("<").rstrip(">").strip()]
    return bool(titles), f"title {titles[0]!r}" if titles else "no <<title>>"


@_ifeval("keywords:existence", keywords=_regex_list)
def existence(text, p):
    """Every keyword appears, anywhere and in any case (keywords are regular expressions)."""
    missing = [k for k in p["keywords"] if not re.search(k, text, re.IGNORECASE)]
    return not missing, f"missing {missing}" if missing else "all keywords present"


@_ifeval("keywords:forbidden_words", forbidden_words=_regex_list)
def forbidden_words(text, p):
    """No forbidden word appears as a whole word, in any case."""
    present = [w for w in p["forbidden_words"] if re.search(r"\b" + w + r"\b", text, re.IGNORECASE)]
    return not present, f"contains {present}" if present else "no forbidden word"


@_ifeval("keywords:frequency", keyword=_regex, frequency=_count, relation=_ifeval_relation)
def frequency(text, p):
    """The keyword appears ``less than`` / ``at least`` frequency times, anywhere and in any case."""
    count = len(re.findall(p["keyword"].strip(), text, re.IGNORECASE))
    return _holds(count, p["frequency"], p["relation"]), f"{p['keyword'].strip()!r} appears {count} times (required {p['relation']} {p['frequency']})"


@_ifeval("keywords:letter_frequency", letter=_one_character, let_frequency=_count, let_relation=_ifeval_relation)
def letter_frequency(text, p):
    """The letter appears ``less than`` / ``at least`` let_frequency times, in any case (a character
    that is not a letter a-z is counted as given, where IFEval would draw a random letter)."""
    letter = p["letter"].strip().lower()
    count = text.lower().count(letter)
    return _holds(count, p["let_frequency"], p["let_relation"]), f"letter {letter!r} appears {count} times (required {p['let_relation']} {p['let_frequency']})"


@_ifeval("language:response_language", language=_text)
def response_language(text, p):
    """The response is in the language with this ISO 639-1 code (langdetect; undetectable passes)."""
    return _language_is(text, p["language"])


@_ifeval("length_constraints:nth_paragraph_first_word", num_paragraphs=_count, nth_paragraph=_count, first_word=_text)
def nth_paragraph_first_word(text, p):
    """Exactly num_paragraphs paragraphs separated by a blank line, and paragraph nth_paragraph
    starts with first_word (case ignored; punctuation ends the word)."""
    parts = text.split("\n\n")
    count = sum(1 for part in parts if part.strip())
    nth = p["nth_paragraph"]
    if not 1 <= nth <= count or not parts[nth - 1].strip():
        return False, f"{count} paragraphs: paragraph {nth} is missing or empty"
    word = parts[nth - 1].strip().split()[0].lstrip("'").lstrip('"')
    first = re.match(r"[^.,?!'\"]*", word).group(0).lower()
    ok = count == p["num_paragraphs"] and first == p["first_word"].lower()
    return ok, f"{count} paragraphs (required {p['num_paragraphs']}); paragraph {nth} starts with {first!r} (required {p['first_word'].lower()!r})"


@_ifeval("length_constraints:number_paragraphs", num_paragraphs=_count)
def number_paragraphs(text, p):
    """Exactly num_paragraphs paragraphs separated by the markdown divider ``***``."""
    parts = re.split(r"\s?\*\*\*\s?", text)
    if any(not part.strip() for part in parts[1:-1]):
        return False, "an empty paragraph between two *** dividers"
    count = sum(1 for part in parts if part.strip())
    return count == p["num_paragraphs"], f"{count} paragraphs separated by *** (required {p['num_paragraphs']})"


@_ifeval("length_constraints:number_sentences", num_sentences=_count, relation=_ifeval_relation)
def number_sentences(text, p):
    """``less than`` / ``at least`` num_sentences sentences (Punkt sentence splitting)."""
    count = count_sentences(text)
    return _holds(count, p["num_sentences"], p["relation"]), f"{count} sentences (required {p['relation']} {p['num_sentences']})"


@_ifeval("length_constraints:number_words", num_words=_count, relation=_ifeval_relation)
def number_words(text, p):
    """``less than`` / ``at least`` num_words words (runs of letters, digits and underscores)."""
    count = count_words(text)
    return _holds(count, p["num_words"], p["relation"]), f"{count} words (required {p['relation']} {p['num_words']})"


@_ifeval("punctuation:no_comma")
def no_comma(text, p):
    """No comma (ASCII ``,``) anywhere."""
    count = text.count(",")
    return count == 0, f"{count} commas"


@_ifeval("startend:end_checker", end_phrase=_text)
def end_checker(text, p):
    """The response ends with the phrase (case ignored; outer spaces and double quotes ignored)."""
    ok = text.strip().strip('"').lower().endswith(p["end_phrase"].strip().lower())
    return ok, f"ends with {text.strip()[-len(p['end_phrase']) - 10:]!r}"


@_ifeval("startend:quotation")
def quotation(text, p):
    """The whole response is wrapped in straight double quotes."""
    body = text.strip()
    ok = len(body) > 1 and body[0] == '"' and body[-1] == '"'
    return ok, "wrapped in double quotes" if ok else f"starts with {body[:1]!r} and ends with {body[-1:]!r}"


IFEVAL_TYPES = (
    "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
    "combination:repeat_prompt", "combination:two_responses", "detectable_content:number_placeholders",
    "detectable_content:postscript", "detectable_format:constrained_response", "detectable_format:json_format",
    "detectable_format:multiple_sections", "detectable_format:number_bullet_lists",
    "detectable_format:number_highlighted_sections", "detectable_format:title", "keywords:existence",
    "keywords:forbidden_words", "keywords:frequency", "keywords:letter_frequency", "language:response_language",
    "length_constraints:nth_paragraph_first_word", "length_constraints:number_paragraphs",
    "length_constraints:number_sentences", "length_constraints:number_words", "punctuation:no_comma",
    "startend:end_checker", "startend:quotation",
)

__all__ = ["ABBREVIATIONS", "IFEVAL_RELATIONS", "IFEVAL_TYPES", "capital_words", "count_sentences", "count_words",
           "ifeval_loose_variants"]
