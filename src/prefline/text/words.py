"""Text helpers shared by the style scorers: words, sentences, clauses, quoted spans.

Everything here is a precompiled regex or a plain loop: the style scorers must score
thousands of responses a second, so nothing here loads a model or a tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

WORD = re.compile(r"\b[\w'’-]+\b")
# Lower-case tokens for n-gram and phrase matching: letters and digits only, so
# "three-second" is two tokens and "100°C" is "100" and "c".
TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9*_`-])|\n\s*\n|\n(?=\s*(?:[-*+•]|\d+[.)])\s)")
# Clause breaks: sentence ends, colons, semicolons, dashes, line breaks, and the
# conjunctions that turn a sentence around ("I can't give specifics, but generally ...").
# (The leading lookaheads only let the engine skip positions that cannot start a match.)
_CLAUSE_BREAK = re.compile(
    r"(?=[\s,:;—–-])(?:(?<=[.!?])\s+|\n+|[:;]\s+|\s+[—–]\s*|\s+--?\s+"
    r"|,?\s+\b(?=(?:but|though|although|however|that said|yet|whereas|still)\b))"
)

_CURLY = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "″": '"'})
_HAS_CURLY = re.compile("[’‘“”″]")

# A double-quoted span, a code block, inline code, or a single-quoted span that starts
# after a space or a colon (so the apostrophe in "can't" never opens one).
QUOTED = re.compile(
    r"(?=[\"`'])(?:\"[^\"]{1,600}\""
    r"|```.*?(?:```|$)"
    r"|`[^`\n]{1,200}`"
    r"|(?:(?<=\s)|(?<=^)|(?<=[:(]))'(?:[^'\n]|(?<=\w)'(?=\w)){2,400}?'(?=[\s.,;:!?)]|$))",
    re.DOTALL,
)
BLOCKQUOTE = re.compile(r"^\s*>.*$", re.MULTILINE)
# Three or more short lines in a row, not list items: verse, lyrics, a letter's sign-off.
_VERSE_LINE = r"[ \t]*(?![-*+•>]|\d+[.)])[^\n]{2,70}"
VERSE = re.compile(rf"(?:^|(?<=\n)){_VERSE_LINE}(?:\n{_VERSE_LINE}){{2,}}(?=\n|$)")

_STOPWORD_LIST = (
    """a an the and or but if then so of to in on at by for with from as into onto over under about
    is are was were be been being am do does did done have has had having it its it's this that these those
    there here i me my we us our you your he him his she her they them their what which who whom whose
    when where why how not no nor can could will would shall should may might must just very too also
    than up down out off again more most some any all each both few other such only own same s t
    don't doesn't didn't isn't aren't wasn't weren't can't won't i'm i've i'd i'll you're you've
    that's what's let's"""
)
STOPWORDS = frozenset(_STOPWORD_LIST.split())


def normalize(text: str) -> str:
    """Straight quotes for curly ones, so one pattern matches both."""
    return text.translate(_CURLY) if _HAS_CURLY.search(text) else text


def count_words(text: str) -> int:
    return len(WORD.findall(text))


def tokens(text: str) -> list[str]:
    return TOKEN.findall(normalize(text).lower())


def split_sentences(text: str) -> list[str]:
    """Sentences, and list items and paragraphs as their own units; empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def split_clauses(text: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_BREAK.split(text) if c and c.strip(" ,.")]


def _is_verse(block: str) -> bool:
    """Short lines that mostly run on without a full stop: verse, not sentences set one per line
    ("I'm sorry.\nI can't help with that.\nPlease ask support." stays)."""
    lines = block.splitlines()
    return sum(not line.rstrip().endswith((".", "!", "?")) for line in lines) * 2 >= len(lines)


def strip_quoted(text: str) -> tuple[str, int]:
    """The text with quoted speech, code and block quotes replaced by a marker, and how many
    words were removed. A refusal inside a quotation (a character who refuses, a quoted
    error message) is not the response refusing; the words still count as delivered content.
    """
    removed = 0

    def drop(match: re.Match[str]) -> str:
        nonlocal removed
        removed += count_words(match.group(0))
        # keep a sentence end that sat inside the quotation: 'it said "no." Then ...'
        return " «quote». " if match.group(0).rstrip("\"'` \n")[-1:] in (".", "!", "?") else " «quote» "

    text = QUOTED.sub(drop, text)
    text = BLOCKQUOTE.sub(drop, text)
    text = VERSE.sub(lambda m: drop(m) if _is_verse(m.group(0)) else m.group(0), text)
    return text, removed


def lower_rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile ``pattern`` for lower-cased text: its literal letters are lower-cased (escapes
    such as ``\\S`` are kept). Matching lower-cased text this way is several times faster
    than ``re.IGNORECASE``, and the scorers lower-case each response once.
    """
    return re.compile(re.sub(r"\\.|[A-Z]", lambda m: m.group(0) if m.group(0)[0] == "\\" else m.group(0).lower(), pattern), flags)


@dataclass(frozen=True)
class Prepared:
    """A response as the style detectors read it."""

    clean: str  # curly quotes straightened; quoted speech, code and verse replaced by a marker
    lower: str  # ``clean`` lower-cased
    quoted_words: int  # words removed with the quoted spans


@lru_cache(maxsize=32768)
def prepare(text: str) -> Prepared:
    """Prepare ``text`` once for all the detectors that read it (cached: several scorers
    score the same responses one after the other)."""
    clean, quoted = strip_quoted(normalize(text))
    return Prepared(clean, clean.lower(), quoted)

