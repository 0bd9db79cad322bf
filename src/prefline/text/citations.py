"""Citation markers in a response, and the provided source each one resolves to (or none).

Markers, in the forms models write them:

- numbers in brackets: ``[1]``, ``[2, 3]``, ``[1-3]``, ``[^4]``, ``[4, p. 2]``; a number resolves to
  the source with that id, or, when no source id is a number, to the source at that position (1-based);
- source ids in brackets or prose: ``[S1]``, ``[doc-2]``, ``[Source: S2]``, ``[Document 2]``,
  "Source 3 says", "(see doc-1)"; an id resolves when it equals a source id, ignoring case, spaces
  and the separators ``- _ . : #``;
- URLs, with or without a scheme (``https://...``, ``www...``, ``doi.org/...``); a URL resolves when
  it equals a source's url ignoring scheme, ``www.``, case, a trailing slash and a ``#fragment``;
- attributions: "according to X", "per X", "as reported in/by X", "Source: X" lines,
  "(Author, 2019)" and "(Author et al., 2019)", a parenthesised title, and a sentence opening
  "X reported/said/found/shows ..." whose X is source-like. X resolves when it names a source by
  title (see :func:`title_matches`), by id ("source S2"), by position ("the second source"),
  generically ("the sources", "the document", "the provided text"), or is an entity a source's
  text itself names ("according to Gustave Eiffel" when a source mentions him).

Brackets that are not citations are left alone: placeholders (``[Your Name]``), notes
(``[citation needed]``, ``[...]``), years (``[1889]``) and anything inside `code`. "According to
plan/taste" is not an attribution: X must name something that can be a source (a capitalised
name, or a word such as report, study, source, experts) for an unresolved X to count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from prefline.text.evidence import STOPWORDS, fold

ORDINALS = {w: i for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth".split(), start=1)}
SOURCE_PREFIX = r"(?:source|src|document|doc|passage|reference|ref|excerpt|text)s?"
SOURCE_NOUNS = frozenset("""
source sources document documents report reports article articles study studies survey surveys paper papers
website site page book text passage data census agency institute research researchers experts scientists
historians analysts officials statistics estimates records review journal encyclopedia encyclopaedia guide
manual handbook bulletin sheet policy notes documentation database publication news newspaper magazine blog
author authors professor doctor organization organisation association society university ministry department
government bureau office commission council centre center foundation poll polls analysis findings figures
filing fact facts release code rules regulations law guidelines standard specification contract agreement
charter act statute treaty
""".split())
GENERIC = re.compile(
    r"(?:the|this|these|those|your|our)\s+(?:provided\s+|given\s+|attached\s+|above\s+|supplied\s+|shared\s+|cited\s+|same\s+)?"
    r"(?:sources?|documents?|texts?|passages?|context|materials?|excerpts?|articles?|reports?|information|data|"
    r"references?|documentation|records?|study|paper|notes|page)(?:\s+(?:provided|given|above|supplied))?", re.IGNORECASE)
TITLE_STOP = frozenset("the a an of for on in to and this these our your its their".split())

CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
BRACKET = re.compile(r"\[\^?\s*([^\[\]\n]{1,60}?)\s*\](?!\()")
URL = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]\"'`]+"
                 r"|(?<![\w@./-])(?:[a-z0-9-]+\.)+(?:com|org|net|gov|edu|io|int|info|co|uk|eu|de|fr)/[^\s<>()\[\]\"'`]*",
                 re.IGNORECASE)
ATTRIBUTION = re.compile(r"\b(?:according\s+to|per|as\s+(?:reported|stated|noted|described|explained|shown|mentioned|documented)\s+(?:in|by))\s+"
                         r"(?P<x>[^,;:.!?\n()]{1,100})", re.IGNORECASE)
SOURCE_LINE = re.compile(r"^[ \t]*(?:sources?|references?)[ \t]*:[ \t]*(?P<x>[^\n]+)$", re.IGNORECASE | re.MULTILINE)
AUTHOR_YEAR = re.compile(r"\((?P<x>[A-Z][\w'-]+(?:\s+et\s+al\.?|\s+(?:and|&)\s+[A-Z][\w'-]+)?,?\s+(?:19|20)\d{2}[a-z]?)\)")
PARENTHESIS = re.compile(r"\((?:source:\s*)?(?P<x>[^()\n]{3,80})\)", re.IGNORECASE)
# "Source 5 says", "(Document 2)", "doc-1" in running text
PROSE_ID = re.compile(r"\b(?P<x>(?:[Ss]ources?|[Dd]ocuments?|[Dd]ocs?)(?:\s+#?|-)(?:\d+|[A-Za-z]\d+))\b(?![\w-])")
# "Reuters reported ...", "A 2020 UNESCO report found ...": a subject at the start of a sentence, then a reporting verb
REPORTING = re.compile(r"(?:^|(?<=[.!?]\s)|(?<=\n))(?P<x>[A-Z][^\s.!?,;:]*(?:[ \t]+[^\s.!?,;:]+){0,6}?)[ \t]+"
                       r"(?P<verb>reported|reports|say|says|said|states|stated|notes|noted|warns|warned|estimates|estimated|"
                       r"concluded|concludes|found|finds|shows|showed|suggests|suggested)\b", re.MULTILINE)
AUXILIARIES = frozenset("do does did not never no is are was were has have had will would can could may might should must".split())
SPEECH_VERBS = frozenset("reported reports says said states stated notes noted warns warned".split())
LOCATOR = re.compile(r"(?:pp?\.?|pages?|para\.?|paragraph|ch\.?|chapter|sec\.?|section|§)\s*\d+(?:\s*[-–]\s*\d+)?", re.IGNORECASE)


@dataclass
class Marker:
    kind: str  # "number", "id", "url" or "attribution"
    text: str  # as written
    start: int
    end: int
    source: str | None  # the provided source's id; "*" for a generic reference to all of them; None: unresolved
    how: str  # "id", "position", "url", "title", "generic", or why it resolves to nothing

    def as_evidence(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "source": self.source, "how": self.how}


def norm_id(text: str) -> str:
    return re.sub(r"[\s\-_.:#]+", "", fold(text))


def norm_url(url: str) -> str:
    url = fold(url.strip()).rstrip(".,;:!?")
    url = re.sub(r"^[a-z]+://", "", url)
    url = re.sub(r"^www\.", "", url)
    return url.split("#")[0].rstrip("/")


class Resolver:
    """Resolves what a marker names against one item's sources."""

    def __init__(self, sources: list[Any]):
        self.sources = list(sources)
        self.ids = {norm_id(s.id): s.id for s in self.sources}
        self.numeric_ids = any(i.isdigit() for i in self.ids)
        self.urls = {norm_url(s.url): s.id for s in self.sources if s.url}

    def number(self, n: int) -> tuple[str | None, str]:
        if str(n) in self.ids:
            return self.ids[str(n)], "id"
        if not self.numeric_ids and 1 <= n <= len(self.sources):
            return self.sources[n - 1].id, "position"
        return None, f"no source {n}"

    def ident(self, text: str) -> tuple[str | None, str]:
        key = norm_id(text)
        if key in self.ids:
            return self.ids[key], "id"
        bare = re.fullmatch(rf"{SOURCE_PREFIX}\s*[:#]?\s*(\S+)", text.strip(), re.IGNORECASE)
        if bare and norm_id(bare.group(1)) != key:  # "Source 2", "Document: S2"
            inner = bare.group(1)
            found = self.number(int(inner)) if inner.isdigit() else self.ident(inner)
            if found[0] is not None:
                return found
        return None, f"no source {text!r}"

    def url(self, url: str) -> tuple[str | None, str]:
        key = norm_url(url)
        return (self.urls[key], "url") if key in self.urls else (None, "URL of no provided source")

    def attribution(self, x: str, whole_title: bool = False) -> tuple[str | None, str] | None:
        """Resolve what X names; None when X is not an attribution at all (e.g. "according to plan")."""
        x = x.strip()
        if GENERIC.fullmatch(x):
            return "*", "generic"
        ordinal = re.fullmatch(rf"(?:the\s+)?(\w+)\s+{SOURCE_PREFIX}", x, re.IGNORECASE)
        if ordinal and ordinal.group(1).lower() in ORDINALS:
            n = ORDINALS[ordinal.group(1).lower()]
            return (self.sources[n - 1].id, "position") if n <= len(self.sources) else (None, f"there is no {ordinal.group(1)} source")
        if re.fullmatch(rf"(?:the\s+)?{SOURCE_PREFIX}\s*[:#]?\s*\S+", x, re.IGNORECASE):
            return self.ident(re.sub(r"^the\s+", "", x, flags=re.IGNORECASE))
        if norm_id(x) in self.ids:
            return self.ids[norm_id(x)], "id"
        for source in self.sources:
            if source.title and title_matches(x, source.title, both_ways=whole_title):
                return source.id, "title"
        named_in = self.named_in_text(x)
        if named_in is not None:
            return named_in, "named in the source's text"
        if _names_a_source(x):
            return None, f"{x!r} is not a provided source"
        return None

    def named_in_text(self, x: str) -> str | None:
        """The source whose text names every capitalised word and number of X (an entity the source
        itself reports on, e.g. "according to Gustave Eiffel"); None when X has no capitalised word."""
        names = [fold(w) for w in re.findall(r"\b[A-Z][\w'-]*", x) if fold(w) not in STOPWORDS]
        digits = re.findall(r"\b\w*\d\w*\b", fold(x))
        if not names:
            return None
        for source in self.sources:
            text = set(re.findall(r"[\w'-]+", fold(source.text)))
            if all(w in text for w in names + digits):
                return source.id
        return None


def _title_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?", fold(text)) if w not in TITLE_STOP and not w.endswith("'s")] + \
           [w[:-2] for w in re.findall(r"[a-z0-9]+'s", fold(text))]


def title_matches(x: str, title: str, both_ways: bool = False) -> bool:
    """X names this title: at least 60% of X's words are title words (and, ``both_ways``, 60% of the
    title's words are in X), and every word of X with a digit in it (a year, a model number) is one of them."""
    xs, ts = _title_words(x), _title_words(title)
    if not xs or not ts:
        return False
    if any(any(c.isdigit() for c in w) and w not in ts for w in xs):
        return False
    forward = sum(w in ts for w in xs) / len(xs) >= 0.6
    return forward and (not both_ways or sum(w in xs for w in ts) / len(ts) >= 0.6)


def _names_a_source(x: str) -> bool:
    words = x.split()
    if any(w[:1].isupper() for w in words[:4]):
        return True
    for word in words[:5]:
        w = re.sub(r"\W", "", fold(word))
        if w in SOURCE_NOUNS or w.removesuffix("s") in SOURCE_NOUNS:
            return True
    return False


def _reporting_subject(x: str, verb: str) -> bool:
    """Is the sentence-opening X of "X found/said ..." a source? Its first word's capital is
    positional, so it needs a source noun, an acronym, a later capitalised word, or (with a verb of
    speech) to be a single name: "Researchers found", "A UNESCO report found", "Reuters reported";
    not "Paris found itself" or "This shows"."""
    words = x.split()
    if any(fold(w) in AUXILIARIES for w in words):  # "The sources do not say": a negated or modal clause
        return False
    if any(len(w) >= 2 and w.isupper() for w in words) or any(w[:1].isupper() for w in words[1:]):
        return True
    if any(re.sub(r"\W", "", fold(w)).removesuffix("s") in SOURCE_NOUNS or re.sub(r"\W", "", fold(w)) in SOURCE_NOUNS for w in words):
        return True
    return len(words) == 1 and verb in SPEECH_VERBS and fold(words[0]) not in STOPWORDS


def _blank(text: str, pattern: re.Pattern[str]) -> str:
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def _bracket_parts(content: str) -> list[str] | None:
    """The parts of a bracket that are all citation-like, or None when it is not a citation."""
    parts = [p.strip() for p in re.split(r"[,;]", content)]
    ok = all(re.fullmatch(r"\d{1,3}(?:\s*[-–]\s*\d{1,3})?", p)
             or re.fullmatch(r"[A-Za-z][A-Za-z_.:-]*\d[\w.:-]*", p)
             or re.fullmatch(rf"{SOURCE_PREFIX}\s*[:#]?\s*[\w.-]*\d[\w.-]*", p, re.IGNORECASE)
             or LOCATOR.fullmatch(p) for p in parts)
    parts = [p for p in parts if not LOCATOR.fullmatch(p)]  # "[4, p. 2]" cites 4
    return parts if ok and parts else None


def find_markers(text: str, sources: list[Any]) -> list[Marker]:
    """Every citation marker in the response, in order, each resolved against the sources."""
    resolver = Resolver(sources)
    ids = set(resolver.ids)
    clean = _blank(text, CODE)
    markers: list[Marker] = []

    for m in URL.finditer(clean):
        url = m.group(0).rstrip(".,;:!?")
        markers.append(Marker("url", url, m.start(), m.start() + len(url), *resolver.url(url)))
    clean = _blank(clean, URL)

    for m in BRACKET.finditer(clean):
        content = m.group(1)
        parts = _bracket_parts(content) or ([content.strip()] if norm_id(content) in ids else None)
        for part in parts or []:
            span = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", part)
            if span and int(span.group(2)) - int(span.group(1)) <= 20:
                for n in range(int(span.group(1)), int(span.group(2)) + 1):
                    markers.append(Marker("number", part, m.start(), m.end(), *resolver.number(n)))
            elif part.isdigit():
                markers.append(Marker("number", part, m.start(), m.end(), *resolver.number(int(part))))
            elif not span:
                markers.append(Marker("id", part, m.start(), m.end(), *resolver.ident(part)))

    taken = [(mk.start, mk.end) for mk in markers]
    for m in PROSE_ID.finditer(clean):
        if not any(a <= m.start() < b for a, b in taken):
            markers.append(Marker("id", m.group("x"), m.start(), m.end(), *resolver.ident(m.group("x"))))
            taken.append((m.start(), m.end()))
    for pattern in (ATTRIBUTION, SOURCE_LINE, AUTHOR_YEAR, REPORTING, PARENTHESIS):
        for m in pattern.finditer(clean):
            x = m.group("x").strip()
            if not x or "[" in x or any(a <= m.start("x") < b or m.start() <= a < m.end() for a, b in taken):
                continue
            if pattern is AUTHOR_YEAR:
                found: tuple[str | None, str] | None = (None, f"{x!r} is not a provided source")
            elif pattern is SOURCE_LINE:
                found = _first_resolved([resolver.attribution(p) for p in re.split(r"\s*;\s*", x)])
            else:
                found = resolver.attribution(x, whole_title=pattern is PARENTHESIS)
                if pattern is PARENTHESIS and found is not None and found[0] is None:
                    found = None  # a parenthesis is a citation only when it names a provided title
                if pattern is REPORTING and not _reporting_subject(x, m.group("verb")):
                    found = None
            if found is not None:
                markers.append(Marker("attribution", x, m.start(), m.end(), *found))
                taken.append((m.start(), m.end()))
    return sorted(markers, key=lambda mk: mk.start)


def _first_resolved(results: list[tuple[str | None, str] | None]) -> tuple[str | None, str] | None:
    found = [r for r in results if r is not None]
    unresolved = [r for r in found if r[0] is None]
    return unresolved[0] if unresolved else (found[0] if found else None)


__all__ = ["Marker", "Resolver", "find_markers", "norm_id", "norm_url", "title_matches"]
