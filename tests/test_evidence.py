"""Evidence scorers on hand-written responses, and the citation detector on a hand-labelled set.

tests/data/validation/citations.jsonl holds cases labelled by what each response means: ``valid``
is true when every citation in it (numbers, ids, URLs, attributions) points to a provided source.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefline.evals.backends import Generation
from prefline.evals.scorers import SCORERS, get_scorers
from prefline.evals.scorers.evidence import CLAUSE_START, _opens_clause, detect_abstention, point_present, unsupported_specifics
from prefline.text.citations import find_markers, title_matches
from prefline.text.evidence import contains_reference, numbers, split_sentences
from prefline.evals.suite import Source, SuiteItem

get_scorers(["length"])  # registers the built-in scorer modules

CITATIONS = Path(__file__).parent / "data" / "validation" / "citations.jsonl"
MIN_ACCURACY = 0.95

SOURCES = [
    {"id": "1", "title": "Eiffel Tower fact sheet", "url": "https://example.org/eiffel",
     "text": "The Eiffel Tower in Paris was completed in 1889 for the World's Fair. It is 330 metres tall including its antennas."},
    {"id": "2", "title": "Paris Metro history",
     "text": "The Paris Metro opened in 1900. The network carries about 4 million passengers a day."},
]
QUESTION = [{"role": "user", "content": "Using the sources, tell me about the Eiffel Tower and the Metro."}]


def item(**fields) -> SuiteItem:
    fields.setdefault("messages", QUESTION)
    return SuiteItem(id=fields.pop("id", "i"), **fields)


def gen(text: str) -> Generation:
    return Generation(output=text, input_tokens=3, output_tokens=5, latency_s=0.1, finish_reason="stop")


def score(name: str, it: SuiteItem, text: str) -> dict:
    return {m: s.value for m, s in SCORERS[name].fn(it, gen(text)).items()}


# --- the labelled citation set ---------------------------------------------------------------------------


def test_citation_validity_on_the_labelled_set():
    """Precision and recall for both classes: "valid" (no fabricated citation) and "fabricated"."""
    rows = [json.loads(line) for line in CITATIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 100
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}  # positive = valid
    misses = []
    for row in rows:
        markers = find_markers(row["response"], [Source(**s) for s in row["sources"]])
        predicted = all(m.source is not None for m in markers)
        key = ("t" if predicted == row["valid"] else "f") + ("p" if predicted else "n")
        counts[key] += 1
        if predicted != row["valid"]:
            misses.append(f"  labelled {row['valid']}: {row['note']}: {row['response'][:80]!r}")
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    accuracy = (tp + tn) / len(rows)
    print(f"\ncitation validity on {len(rows)} labelled cases ({tp + fn} valid, {tn + fp} fabricated): "
          f"accuracy {accuracy:.3f}; valid: precision {tp / max(tp + fp, 1):.3f} recall {tp / max(tp + fn, 1):.3f}; "
          f"fabricated: precision {tn / max(tn + fn, 1):.3f} recall {tn / max(tn + fp, 1):.3f}")
    print("\n".join(misses))
    assert accuracy >= MIN_ACCURACY, "\n".join(misses)


def test_markers_and_their_resolution():
    sources = [Source(**s) for s in SOURCES]
    found = find_markers("Built in 1889 [1, 2] [3]; see https://example.org/eiffel/ and [Your Name]. "
                         "According to the Metro history, it opened in 1900. According to plan, all went well.", sources)
    assert [(m.kind, m.text, m.source, m.how) for m in found] == [
        ("number", "1", "1", "id"), ("number", "2", "2", "id"), ("number", "3", None, "no source 3"),
        ("url", "https://example.org/eiffel/", "1", "url"), ("attribution", "the Metro history", "2", "title")]
    assert title_matches("the 2022 rainfall report", "Annual Rainfall Report 2022")
    assert not title_matches("the 2019 rainfall report", "Annual Rainfall Report 2022")


# --- citations ------------------------------------------------------------------------------------------------


def test_citation_metrics():
    grounded = item(sources=SOURCES)
    assert score("citations", grounded, "It opened in 1900 [2] and is 330 m tall [1].") == {
        "citation_count": 2.0, "fabricated_citation": 0.0, "cites_unprovided": 0.0}
    assert score("citations", grounded, "It opened in 1900 [2]; see https://metro.example/history.") == {
        "citation_count": 2.0, "fabricated_citation": 0.5, "cites_unprovided": 1.0}
    assert score("citations", grounded, "It opened in 1900.") == {
        "citation_count": 0.0, "fabricated_citation": None, "cites_unprovided": 0.0}
    assert score("citations", item(), "It opened in 1900 [7].") == {
        "citation_count": None, "fabricated_citation": None, "cites_unprovided": None}


# --- support -----------------------------------------------------------------------------------------------------


def test_support():
    grounded = item(sources=SOURCES)
    assert score("support", grounded, "The Eiffel Tower was completed in 1889 [1]. The Metro opened in 1900 [2].") == {"unsupported_claim": 0.0}
    # the second claim's words are not in source 1; the third states a number source 2 does not
    scores = SCORERS["support"].fn(grounded, gen(
        "The tower is 330 metres tall [1]. It is repainted with sixty tonnes of paint [1]. The Metro opened in 1910 [2]. Sources: [1]"))
    assert scores["unsupported_claim"].value == pytest.approx(2 / 3)
    sentences = scores["unsupported_claim"].evidence["sentences"]
    assert [s["supported"] for s in sentences] == [True, False, False]
    assert sentences[2]["numbers_missing"] == [1910.0]
    assert score("support", grounded, "The tower is in Paris.") == {"unsupported_claim": None}
    assert score("support", grounded, "The tower was built in 1889 [5].") == {"unsupported_claim": 1.0}


def test_support_evidence_on_a_tie_is_the_first_cited_source():
    """Six cited sources back the claim's words equally; the evidence reports the first provided,
    whatever order the process's string hashing gives the cited ids."""
    sources = [{"id": f"S{i}", "text": f"The bridge opened in {1900 + i}."} for i in range(1, 7)]
    scores = SCORERS["support"].fn(item(sources=sources), gen("The bridge opened in 1901 or 1902 [S6, S5, S4, S3, S2, S1]."))
    sentence = scores["unsupported_claim"].evidence["sentences"][0]
    assert sentence["recall"] == 1.0 and sentence["numbers_missing"] == [1902.0]


# --- abstention -----------------------------------------------------------------------------------------------------

ABSTAINS = [
    "The sources do not say how many people visit the tower.",
    "I don't know who designed the lifts.",
    "This cannot be determined from the provided documents.",
    "The opening hours are not mentioned in the provided text.",
    "There is no information about ticket prices in these sources.",
    "Nobody knows; the original blueprints' author is unknown.",
    "I'm unable to answer that from the material given.",
]
ANSWERS = [
    "The tower is 330 metres tall.",
    "I know this one: it opened in 1900.",
    "The Metro carries about 4 million passengers a day, and the sources say it opened in 1900.",
    "It cannot be missed: the tower is the tallest structure in Paris.",
]


@pytest.mark.parametrize("text", ABSTAINS)
def test_abstentions_are_detected(text):
    assert detect_abstention(text)[0], text


@pytest.mark.parametrize("text", ANSWERS)
def test_answers_are_not_abstentions(text):
    assert not detect_abstention(text)[0], detect_abstention(text)


def test_abstention_metrics():
    unanswerable = item(answerable=False, sources=SOURCES)
    answerable = item(answerable=True, sources=SOURCES, reference="330 metres")
    assert score("abstention", unanswerable, ABSTAINS[0]) == {"abstained": 1.0, "false_abstention": None, "confident_wrong": None}
    assert score("abstention", unanswerable, "About 7 million people visit each year.")["abstained"] == 0.0
    assert score("abstention", answerable, "The sources do not say how tall it is.") == {
        "abstained": None, "false_abstention": 1.0, "confident_wrong": 0.0}
    assert score("abstention", answerable, "It is 330 m tall.") == {"abstained": None, "false_abstention": 0.0, "confident_wrong": 0.0}
    assert score("abstention", answerable, "It is 300 metres tall.")["confident_wrong"] == 1.0
    assert score("abstention", answerable, "It is probably about 300 metres tall.")["confident_wrong"] == 0.0  # hedged


def test_reference_matching():
    assert contains_reference("It was finished in 1889.", "1889")[0]
    assert contains_reference("It holds 1000 people.", "1,000")[0]
    assert contains_reference("It costs 3.50 euros.", "3.5")[0]
    assert contains_reference("There are twelve of them.", "12")[0]
    assert contains_reference("The answer is Canberra.", "canberra")[0]
    assert not contains_reference("It holds 100 people.", "1,000")[0]
    assert not contains_reference("The capital is Sydney.", "Canberra")[0]
    assert numbers("Built in 1889 by model X200, about 4.5 km") == [1889.0, 4.5]
    assert split_sentences("It opened in 1900. [2] Dr. Smith agreed.\n- a bullet") == ["It opened in 1900. [2]", "Dr. Smith agreed.", "- a bullet"]


# --- the four error modes ----------------------------------------------------------------------------------------------


def test_fabrication():
    grounded = item(sources=SOURCES)
    assert score("error_modes", grounded, "The Eiffel Tower was completed in 1889 [1] and is 330 metres tall.")["fabrication"] == 0.0
    assert score("error_modes", grounded, "It was completed in 1889 [3].")["fabrication"] == 1.0  # unprovided citation
    scores = SCORERS["error_modes"].fn(grounded, gen("The tower was completed in 1889 and weighs 10,100 tonnes. It was designed by Maurice Koechlin."))
    assert scores["fabrication"].value == 1.0
    assert scores["fabrication"].evidence["unsourced"] == {"numbers": [10100.0], "names": ["Maurice Koechlin"]}
    # sentence-initial capitals, list numbering and small counts are not specifics
    assert unsupported_specifics(grounded, "Sure. Two facts:\n1. The Metro opened in 1900.\n2. Paris has it.") == {"numbers": [], "names": []}
    assert score("error_modes", item(), "Maurice Koechlin, 10,100 tonnes.")["fabrication"] is None


def test_clause_openers_are_found_without_reading_the_whole_text():
    """``_opens_clause`` searches only the tail that can match; it must agree with a search of everything before."""
    texts = ["Sure. Two facts:\n1. The Metro opened.\n2. Paris has it.", "He said \"Hello\" and ( Rome) then\n  - Bullet",
             "## Heading\n###   Title here\n12) Numbered\n٣. Arabic digit", "A\n", "\nB", "x.  \n  \t* Star\n+ Plus: Colon; Semi"]
    for body in texts:
        for at in range(len(body) + 1):
            assert _opens_clause(body, at) == (CLAUSE_START.search(body[:at]) is not None), (body, at)


def test_omission():
    it = item(required_points=["completed in 1889", "330 metres tall", "designed by Gustave Eiffel's firm"])
    assert score("error_modes", it, "Completed in 1889, it is 330 m tall; Gustave Eiffel's firm designed it.")["omission"] == 0.0
    scores = SCORERS["error_modes"].fn(it, gen("It was completed in 1889."))
    assert scores["omission"].value == pytest.approx(2 / 3)
    assert scores["omission"].evidence["missing"] == ["330 metres tall", "designed by Gustave Eiffel's firm"]
    assert not point_present("330 metres tall", "It is 300 metres tall.")
    assert score("error_modes", item(), "anything")["omission"] is None


def test_conflation():
    grounded = item(sources=SOURCES)
    conflated = SCORERS["error_modes"].fn(grounded, gen("The Paris Metro opened in 1900 and carries 4 million passengers a day [1]."))
    assert conflated["conflation"].value == 1.0
    assert conflated["conflation"].evidence["conflated"][0]["better_source"] == "2"
    assert score("error_modes", grounded, "The Paris Metro opened in 1900 [2].")["conflation"] == 0.0
    # unsupported by every source: unsupported, but not conflated
    assert score("error_modes", grounded, "The Metro has sixteen lines and 300 stations [1].")["conflation"] == 0.0
    assert score("error_modes", grounded, "The Metro opened in 1900.")["conflation"] is None


def test_hallucination():
    it = item(reference="Canberra", messages=[{"role": "user", "content": "What is the capital of Australia?"}])
    assert score("error_modes", it, "The capital of Australia is Sydney.")["hallucination"] == 1.0
    assert score("error_modes", it, "I think it might be Sydney.")["hallucination"] == 1.0  # hedged, still asserted
    assert score("error_modes", it, "Canberra.")["hallucination"] == 0.0
    assert score("error_modes", it, "I don't know the answer to that.")["hallucination"] == 0.0
    assert score("error_modes", item(), "Sydney.")["hallucination"] is None


# --- every new scorer, end to end on a mixed run ------------------------------------------------------------------------


def test_scores_match_declared_metrics_and_evidence_is_json(monkeypatch):
    from prefline.evals.scorers import behaviour_embedding

    monkeypatch.setattr(behaviour_embedding, "embedding_model", lambda: None)  # the model has its own test
    names = ["instructions", "structured_output", "tool_call", "on_task", "consistency",
             "citations", "support", "abstention", "error_modes"]
    items = [
        item(id="a", sources=SOURCES, answerable=True, reference="1889", required_points=["1889"], paraphrase_group="g",
             constraints=[{"type": "max_words", "params": {"n": 40}}], json_schema={"type": "object"},
             expected_tool_call={"name": "lookup", "arguments": {"q": "tower"}}),
        item(id="b", paraphrase_group="g", reference="1889"),
        item(id="c"),
    ]
    outputs = ["The tower was completed in 1889 [1].", "It was completed in 1889.", ""]
    for s in get_scorers(names):
        assert s.layer in ("behaviour", "evidence") and s.description
        results = s.score_all(items, [gen(o) for o in outputs])
        assert len(results) == len(items)
        for scores in results:
            assert set(scores) == set(s.metrics), s.name
            json.dumps({m: [sc.value, sc.evidence] for m, sc in scores.items()})
        assert all(sc.value is None for sc in results[2].values() if s.name not in ("on_task",)), s.name
