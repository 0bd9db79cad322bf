"""Text matching shared by the evidence and behaviour scorers: sentences, content words, numbers,
and whether a response contains a reference answer.

Everything here is lexical and deterministic, so every decision can be shown in evidence:
the words or numbers that matched, and the ones that did not.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Function words carry no claim: leaving them out makes overlap measure content.
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
nor not of off on once only or other our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves
s t don didn doesn isn wasn aren weren won wouldn shouldn couldn ve ll re d m o
per via upon among within without whether yet still around
""".split())

NUMBER_WORDS = {w: float(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
NUMBER_WORDS.update({"thirty": 30.0, "forty": 40.0, "fifty": 50.0, "sixty": 60.0, "seventy": 70.0,
                     "eighty": 80.0, "ninety": 90.0, "hundred": 100.0, "thousand": 1000.0})

NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)")
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")


def fold(text: str) -> str:
    """Case, accents and typographic quotes folded away."""
    text = unicodedata.normalize("NFKD", text.replace("’", "'").replace("‘", "'"))
    if not text.isascii():  # drop the combining marks NFKD split off, looking at each distinct character once
        marks = [c for c in set(text) if unicodedata.combining(c)]
        text = text.translate(dict.fromkeys(map(ord, marks))) if marks else text
    return text.lower()


SUFFIXES = tuple((re.compile(pattern), keep) for pattern, keep in (
    (r"ies$", "y"), (r"(?:(?<=ss)|(?<=[xz])|(?<=ch)|(?<=sh))es$", ""), (r"(?<!s)s$", ""), (r"ing$", ""), (r"ed$", "")))


@lru_cache(maxsize=65536)  # a vocabulary is small next to the number of words stemmed
def stem(word: str) -> str:
    """A light suffix stripper: enough to match "bridges" with "bridge" and "opened" with "opens"."""
    if len(word) > 4:
        for pattern, keep in SUFFIXES:
            stripped = pattern.sub(keep, word)
            if stripped != word:
                word = stripped
                break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


# The scorers read the same texts many times over: a response once per required point and per
# reference check, a source once per cited sentence. The three readings below are cached per
# text (as tuples, so no caller can change a cached value) and handed out as fresh lists.
TEXT_CACHE = 1024  # plenty for one item's texts and the sources of the items before it, in a few MB


@lru_cache(maxsize=TEXT_CACHE)
def _words(text: str) -> tuple[str, ...]:
    return tuple(w.replace("'", "") for w in WORD.findall(fold(text)))


@lru_cache(maxsize=TEXT_CACHE)
def _content_words(text: str) -> tuple[str, ...]:
    return tuple(stem(w) for w in _words(text) if w not in STOPWORDS and not w.isdigit())


@lru_cache(maxsize=TEXT_CACHE)
def _numbers(text: str) -> tuple[float, ...]:
    found = [float(m.group(0).replace(",", "").replace("−", "-")) for m in NUMBER.finditer(text)]
    found += [NUMBER_WORDS[w] for w in _words(text) if w in NUMBER_WORDS]
    return tuple(found)


def words(text: str) -> list[str]:
    return list(_words(text))


def content_words(text: str) -> list[str]:
    """Stemmed words that are neither function words nor bare numbers (numbers are matched as numbers)."""
    return list(_content_words(text))


def numbers(text: str) -> list[float]:
    """Numbers written in digits (1,000 and 1000 are equal; 3.50 equals 3.5) or as words up to twenty and the tens."""
    return list(_numbers(text))


def recall(needed: list[str], available: list[str]) -> float:
    """Share of the distinct ``needed`` words found in ``available`` (1.0 when nothing is needed)."""
    need = set(needed)
    return len(need & set(available)) / len(need) if need else 1.0


def phrase_in(phrase: str, text: str) -> bool:
    """The phrase occurs in the text as whole words, after folding case, accents and punctuation."""
    a, b = " ".join(_words(phrase)), " ".join(_words(text))
    return bool(a) and f" {a} " in f" {b} "


ARTICLES = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)


def contains_reference(response: str, reference: str) -> tuple[bool, str]:
    """Does the response contain the reference answer? Returns the decision and how it was decided.

    1. the reference (without a leading article) occurs as a phrase, case and punctuation folded;
    2. else, when the reference has numbers, every one of them occurs in the response as a number
       (units and wording may differ: "330 m" matches "330 metres", "1,000" matches "1000");
    3. else every content word of the reference occurs in the response (stemmed).
    """
    ref = ARTICLES.sub("", reference.strip())
    if phrase_in(ref, response):
        return True, "phrase match"
    ref_numbers = numbers(ref)
    if ref_numbers:
        got = numbers(response)
        missing = [n for n in ref_numbers if not any(abs(n - g) < 1e-9 for g in got)]
        return not missing, "numbers match" if not missing else f"number(s) {missing} absent"
    needed = content_words(ref)
    if needed and recall(needed, content_words(response)) == 1.0:
        return True, "all content words present"
    return False, "reference absent"


ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|etc|vs|Mr|Mrs|Ms|Dr|Prof|St|No|approx|al|Fig|cf)\.", re.IGNORECASE)
# A sentence ends at . ! ? followed by space, at a newline, or at the end; a citation marker right
# after the full stop ("... in 1889. [1]") still belongs to the sentence it follows.
SENTENCE = re.compile(r"[^\n]*?(?:[.!?]+(?:[\"”’')\]]*)(?:\s*\[[^\[\]\n]{1,40}\])*(?=\s|$)|\n|$)")
HAS_WORD = re.compile(r"\w")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence with a word in it, whitespace trimmed."""
    protected = ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "\x00"), text)  # same length
    spans = []
    for match in SENTENCE.finditer(protected):
        chunk = match.group(0)
        if HAS_WORD.search(chunk):
            start = match.start() + len(chunk) - len(chunk.lstrip())
            spans.append((start, match.start() + len(chunk.rstrip())))
    return spans


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


__all__ = ["STOPWORDS", "contains_reference", "content_words", "fold", "numbers", "phrase_in", "recall",
           "sentence_spans", "split_sentences", "stem", "words"]
