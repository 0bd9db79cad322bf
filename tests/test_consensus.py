"""Consensus and agreement: majority vote and Dawid-Skene against numbers worked out by hand,
Krippendorff's alpha and percent agreement by hand, flagged annotators, and the agreement command."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from prefline.cli import app
from prefline.data.agreement import agreement_report, krippendorff_alpha, per_annotator, percent_agreement, votes_of
from prefline.data.consensus import combine, dawid_skene_posteriors, majority
from prefline.data.ingest import ingest
from prefline.data.schema import Signal

PROMPT = [{"role": "user", "content": "q"}]


def msg(text):
    return [{"role": "assistant", "content": text}]


def vote(x, y, label, annotator=None, confidence=1.0, kind="pairwise", rule="human_choice", slices=None):
    return Signal(PROMPT, msg(x), msg(y), label, kind, rule, annotator=annotator, confidence=confidence, slices=slices or {})


def grouped(signals):
    groups = {}
    for s in signals:
        groups.setdefault(s.key, []).append(s)
    return groups


def test_majority_label_and_confidence():
    """Votes on (x, y): a, a, b (the third given as (y, x) with "a"): x wins 2 of 3 -> confidence 2/3.
    An events signal of confidence 0.7 alone -> 0.7. One a-vote and one b-vote -> no consensus.
    Weighted: a (1.0) against b (0.4): a wins with (1.0) / 2 signals = 0.5."""
    signals = [vote("x", "y", "a", "r1"), vote("x", "y", "a", "r2"), vote("y", "x", "a", "r3"),
               vote("p", "q", "a", confidence=0.7, kind="events", rule="edit_over_draft"),
               vote("m", "n", "a", "r1"), vote("m", "n", "b", "r2"),
               vote("u", "v", "a", "r1"), vote("u", "v", "b", "r2", confidence=0.4)]
    outcomes = majority(grouped(signals))
    xy, pq, mn, uv = (outcomes[s.key] for s in (signals[0], signals[3], signals[4], signals[6]))
    assert xy.label == signals[0].label and xy.confidence == pytest.approx(2 / 3, abs=1e-6)
    assert pq.confidence == 0.7
    assert mn.label is None and mn.category == "no-consensus" and mn.reason == "no consensus (a 1, b 1)"
    assert uv.label == signals[6].label and uv.confidence == 0.5


def test_consensus_tie_makes_no_pair():
    signals = [vote("x", "y", "tie", "r1"), vote("x", "y", "tie", "r2"), vote("x", "y", "a", "r3")]
    (outcome,) = majority(grouped(signals)).values()
    assert outcome.label is None and outcome.category == "consensus-tie"


def test_dawid_skene_one_iteration_by_hand():
    """Tasks t1..t3, workers w1..w3, labels a/b:  t1: a a b,  t2: b b b,  t3: a a a.

    Start (majority shares): t1 = (2/3, 1/3), t2 = (0, 1), t3 = (1, 0); priors = mean = (5/9, 4/9).
    M-step, P(observed | true), each column normalised over observed labels:
      w1 (and w2): saw a on t1, t3 -> column a: 2/3 + 1 = 5/3, column b: 1/3; saw b on t2 -> a: 0, b: 1.
                   P(a|a) = 1, P(a|b) = (1/3)/(4/3) = 1/4, P(b|b) = 3/4.
      w3: saw b on t1, t2 -> a: 2/3, b: 4/3; saw a on t3 -> a: 1, b: 0.
                   P(b|a) = (2/3)/(5/3) = 2/5, P(a|a) = 3/5, P(b|b) = 1.
    E-step for t1 (w1 a, w2 a, w3 b):
      true a: 5/9 * 1 * 1 * 2/5 = 2/9;  true b: 4/9 * 1/4 * 1/4 * 1 = 1/36;  P(a) = (8/36) / (9/36) = 8/9.
    So one round lifts t1 from majority's 2/3 to 8/9: w3, who said b, says b on a-tasks 2 times in 5.
    (crowd-kit clips zero counts to 1e-10, hence the tolerance.)"""
    votes = [("t1", "w1", "a"), ("t1", "w2", "a"), ("t1", "w3", "b"), ("t2", "w1", "b"), ("t2", "w2", "b"),
             ("t2", "w3", "b"), ("t3", "w1", "a"), ("t3", "w2", "a"), ("t3", "w3", "a")]
    posteriors = dawid_skene_posteriors(votes, n_iter=1)
    assert posteriors["t1"]["a"] == pytest.approx(8 / 9, abs=1e-8)
    assert posteriors["t2"]["b"] == pytest.approx(1.0, abs=1e-8)
    assert posteriors["t3"]["a"] == pytest.approx(1.0, abs=1e-8)
    assert dawid_skene_posteriors([]) == {}


@pytest.mark.parametrize("seed", range(4))
def test_dawid_skene_on_arrays_matches_crowd_kit(seed):
    """The array EM gives crowd-kit's DawidSkene posteriors on random vote sets: a few hundred pairs,
    eight annotators of whom three are careless, one to five votes a pair, some ties."""
    import random
    import warnings

    pd = pytest.importorskip("pandas")
    crowdkit = pytest.importorskip("crowdkit.aggregation")
    rng = random.Random(seed)
    votes = []
    for t in range(rng.randint(50, 300)):
        truth = rng.choice("ab")
        for w in rng.sample(range(8), rng.randint(1, 5)):
            label = truth if rng.random() < (0.4 if w < 3 else 0.85) else rng.choice(["a", "b", "tie"])
            votes.append((f"t{t}", f"w{w}", label))
    ours = dawid_skene_posteriors(votes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = crowdkit.DawidSkene(n_iter=100, tol=1e-5).fit_predict_proba(pd.DataFrame(votes, columns=["task", "worker", "label"]))
    assert set(ours) == set(theirs.index) and all(set(p) == set(theirs.columns) for p in ours.values())
    assert max(abs(ours[t][label] - theirs.loc[t, label]) for t in ours for label in ours[t]) < 1e-12


def test_dawid_skene_trusts_reliable_annotators_over_a_contrarian():
    """Two careful raters agree on five pairs; a third always says the opposite. On a sixth pair only the
    careful r1 and the contrarian vote, 1:1 -> majority has no consensus, Dawid-Skene sides with r1."""
    signals = []
    for i in range(5):
        signals += [vote(f"x{i}", f"y{i}", "a", "r1"), vote(f"x{i}", f"y{i}", "a", "r2"), vote(f"x{i}", f"y{i}", "b", "contrarian")]
    disputed = [vote("x9", "y9", "a", "r1"), vote("x9", "y9", "b", "contrarian")]
    groups = grouped(signals + disputed)
    assert majority(groups)[disputed[0].key].label is None
    outcome = combine(groups, "dawid-skene")[disputed[0].key]
    assert outcome.label == disputed[0].label and outcome.confidence > 0.9 and outcome.method == "dawid-skene"


def test_a_review_settles_its_group():
    signals = [vote("x", "y", "a", "r1"), vote("x", "y", "a", "r2"),
               vote("x", "y", "b", "expert", kind="review", rule="expert_review")]
    for method in ("majority", "dawid-skene"):
        (outcome,) = combine(grouped(signals), method).values()
        assert (outcome.label, outcome.confidence, outcome.method) == (signals[2].label, 1.0, "review")


def test_krippendorff_alpha_by_hand():
    """Two coders, four items, nominal: (a, a), (b, b), (a, b), (b, b).
    Coincidences: o_aa = 2, o_bb = 4, o_ab = o_ba = 1; n_a = 3, n_b = 5, n = 8.
    D_o = 2/8; D_e = 2 * 3 * 5 / (8 * 7) = 30/56; alpha = 1 - (1/4) / (30/56) = 1 - 14/30 = 16/30.
    Percent agreement: 3 of the 4 vote pairs match."""
    votes = [("i1", "x", "a"), ("i1", "y", "a"), ("i2", "x", "b"), ("i2", "y", "b"),
             ("i3", "x", "a"), ("i3", "y", "b"), ("i4", "x", "b"), ("i4", "y", "b")]
    assert krippendorff_alpha(votes) == pytest.approx(16 / 30)
    assert percent_agreement(votes) == (0.75, 4)
    assert krippendorff_alpha([("i1", "x", "a"), ("i1", "y", "a")]) is None  # one label only: undefined
    assert krippendorff_alpha([("i1", "x", "a"), ("i2", "y", "b")]) is None  # no item with two votes


def test_far_below_the_rest_is_flagged():
    """Three annotators agree on 6 items; a fourth agrees with them on 1 of 6. Everyone else agrees with the
    others on 13 of 18 vote pairs (0.72); the outlier on 3 of 18 (0.17) < 0.72 - 0.2."""
    votes = []
    for i in range(6):
        votes += [(f"i{i}", name, "a") for name in ("r1", "r2", "r3")]
        votes.append((f"i{i}", "r4", "a" if i == 0 else "b"))
    stats = per_annotator(votes)
    assert [name for name, s in stats.items() if s["flagged"]] == ["r4"]
    assert stats["r4"]["agreement_with_others"] == pytest.approx(3 / 18, abs=1e-6)
    assert stats["r1"]["agreement_with_others"] == pytest.approx(13 / 18, abs=1e-6)
    assert "below the median annotator" in stats["r4"]["why"]
    assert stats["r4"]["alpha_without"] is None  # without r4 every vote is "a": alpha is undefined
    assert not any(s["flagged"] for s in per_annotator(votes, min_pairs=100).values())


def test_ratings_votes_count_per_rater():
    signal = Signal(PROMPT, msg("x"), msg("y"), "a", "ratings", "rating_gap>=1",
                    votes=[{"annotator": "r1", "label": "a"}, {"annotator": "r2", "label": "tie"}])
    assert sorted(votes_of([signal])) == sorted([(signal.key, "r1", signal.label), (signal.key, "r2", "tie")])


def test_agreement_report_per_slice_and_axis():
    signals = [vote("x", "y", "a", "r1", slices={"intent": "coding"}), vote("x", "y", "a", "r2", slices={"intent": "coding"}),
               vote("m", "n", "a", "r1", slices={"intent": "factual"}), vote("m", "n", "b", "r2", slices={"intent": "factual"})]
    signals[0].axes, signals[1].axes = {"tone": "a"}, {"tone": "b"}
    report = agreement_report(signals)
    assert report["overall"]["percent_agreement"] == 0.5 and report["overall"]["n_items"] == 2
    assert report["slices"]["intent=coding"]["percent_agreement"] == 1.0
    assert report["slices"]["intent=factual"]["percent_agreement"] == 0.0
    assert report["axes"]["tone"]["percent_agreement"] == 0.0


def test_agreement_command(tmp_path, ledger):
    rows = []
    for i in range(6):
        for name in ("ann-1", "ann-2", "ann-3"):
            rows.append({"prompt": f"q{i}", "response_a": "good", "response_b": "bad", "choice": "a", "annotator": name,
                         "slices": {"intent": "coding" if i % 2 else "factual"}})
        rows.append({"prompt": f"q{i}", "response_a": "good", "response_b": "bad", "choice": "b", "annotator": "ann-4"})
    ingest(write_jsonl(tmp_path / "votes.jsonl", rows), "votes", ledger, signal="pairwise", consensus="dawid-skene")
    runner = CliRunner()
    result = runner.invoke(app, ["data", "agreement", "votes", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dataset"] == "votes@1" and report["overall"]["n_annotators"] == 4
    assert report["overall"]["percent_agreement"] == pytest.approx(0.5)  # 3 of 6 pairs per item match
    assert report["annotators"]["ann-4"]["flagged"] and not report["annotators"]["ann-1"]["flagged"]
    assert set(report["slices"]) == {"intent=coding", "intent=factual"}
    table = runner.invoke(app, ["data", "agreement", "votes"])
    assert table.exit_code == 0 and "ann-4" in table.output and "below the median" in table.output
