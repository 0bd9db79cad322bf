"""Bad input, as a hostile or careless user gives it, through every reader and every signal kind.

What must hold: a bad record becomes a rejected row with its line and reason (the rejects file
complete, ``read = accepted + rejected + duplicates + excluded``); a bad file, option or name is one
line on stderr with exit code 2; nothing shows a Python traceback; nothing given is dropped unseen.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import pair, write_jsonl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from prefline.cli import app
from prefline.data.ingest import ingest
from prefline.data.store import check_name
from prefline.data.schema import RowError, pair_fields
from prefline.data.signals import SIGNAL_KINDS, Fate, IngestRules, KindContext
from prefline.data.sources import RawRecord, hh_row, ultrafeedback_row
from prefline.errors import PreflineError

SIGNALS = Path(__file__).parent / "data" / "signals"
runner = CliRunner()
DEEP = 100_000


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *needles: str) -> str:
    """The command failed the user's way: exit 2, one line on stderr, no traceback, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def rejects(result) -> list[dict]:
    return [json.loads(line) for line in Path(result.rejects_path).read_text().splitlines()]


def reconciles(result) -> None:
    assert result.n_read == result.n_accepted + result.n_rejected + result.n_duplicates + result.n_excluded
    assert len(rejects(result)) == result.n_rejected + result.n_duplicates + result.n_excluded


# --- what a file holds ---------------------------------------------------------------------------


def test_a_byte_order_mark_opens_csv_and_jsonl_without_changing_their_first_record(tmp_path, ledger):
    csv_file = tmp_path / "bom.csv"
    csv_file.write_bytes("\ufeffprompt,chosen,rejected\nWhat is 2+2?,The answer is 4.,The answer is 5.\n".encode("utf-8"))
    result = ingest(csv_file, "bom-csv", ledger)
    row = pq.read_table(result.path).to_pylist()[0]
    assert row["prompt"] == [{"role": "user", "content": "What is 2+2?"}]  # not "The answer is"
    assert row["chosen"] == [{"role": "assistant", "content": "The answer is 4."}]

    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps(pair(1)).encode() + b"\n" + json.dumps(pair(2)).encode() + b"\n")
    result = ingest(jsonl, "bom-jsonl", ledger)
    assert (result.n_accepted, result.n_rejected) == (2, 0)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_misspelled_prompt_column_is_named_not_guessed(tmp_path, suffix):
    path = tmp_path / f"typo.{suffix}"
    if suffix == "csv":
        path.write_text("promt,chosen,rejected\nWhat is 2+2?,The answer is 4.,The answer is 5.\n")
    else:
        write_jsonl(path, [{"promt": "What is 2+2?", "chosen": "The answer is 4.", "rejected": "The answer is 5."}])
    line = one_line_error(cli("data", "ingest", path, "--name", "typo"), "missing field(s): 'prompt'", "'promt' looks like 'prompt'")
    assert "The answer is" not in line.split("raw")[0] or "found:" in line


def test_unknown_fields_are_kept_with_the_pair_and_reported_once(tmp_path, ledger):
    path = write_jsonl(tmp_path / "extra.jsonl", [pair(i, note=f"checked by {i}", batch=7) for i in range(4)])
    result = ingest(path, "extra", ledger)
    assert result.unknown_fields == {"batch": 4, "note": 4}
    notes = [p for p in result.problems if "does not use" in p]
    assert len(notes) == 1 and "'note' (4 record(s))" in notes[0]
    kept = [json.loads(r["signals"])[0]["extra"] for r in pq.read_table(result.path).to_pylist()]
    assert sorted(k["note"] for k in kept) == [f"checked by {i}" for i in range(4)] and all(k["batch"] == 7 for k in kept)
    assert ledger.get_dataset("extra")["meta"]["unknown_fields"] == {"batch": 4, "note": 4}
    # and on the command line, once, on stderr
    out = cli("data", "ingest", path, "--name", "extra", "--json")
    assert out.exit_code == 0 and out.stderr.count("does not use") == 1
    json.loads(out.stdout)


def test_unknown_fields_of_a_kind_that_combines_records_are_kept_too(tmp_path, ledger):
    rows = [json.loads(line) for line in (SIGNALS / "ratings.jsonl").read_text().splitlines()]
    rows[0]["batch"] = "b-1"
    result = ingest(write_jsonl(tmp_path / "r.jsonl", rows), "rx", ledger, signal="ratings")
    assert result.unknown_fields == {"batch": 1}
    from prefline.data.store import load_signals

    assert any(s.meta.get("extra") == {"batch": "b-1"} for s in load_signals(ledger.get_dataset("rx")))


def _deep(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


KIND_FILES = {"pairs": ("trl_conversational.jsonl", "prompt"), "pairwise": ("pairwise.jsonl", "rationale"),
              "judge": ("judge.jsonl", "rationale"), "ratings": ("ratings.jsonl", "slices"), "events": ("events.jsonl", "user")}


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_deep_nesting_is_a_rejected_row_in_every_kind(tmp_path, ledger, kind):
    name, _ = KIND_FILES[kind]
    lines = (SIGNALS / name).read_text().splitlines()
    bad = '{"prompt": "hi", "deep": ' + _deep() + "}"
    path = tmp_path / f"{kind}.jsonl"
    path.write_text("\n".join([*lines, bad]) + "\n")
    result = ingest(path, f"deep-{kind}", ledger, signal=kind)
    reconciles(result)
    reasons = {r["line"]: r["reason"] for r in rejects(result)}
    assert "nested deeper than" in reasons[len(lines) + 1]


@pytest.mark.parametrize("fmt", ["csv", "hh-rlhf", "ultrafeedback"])
def test_deep_nesting_is_a_rejected_row_in_every_reader(tmp_path, ledger, fmt):
    if fmt == "csv":
        path = tmp_path / "deep.csv"
        cell = '"[{""role"": ""assistant"", ""content"": ' + _deep() + '}]"'
        path.write_text(f"prompt,chosen,rejected\nHi?,Hello.,Go away.\nHi?,{cell},No.\n")
        line = 3
    elif fmt == "hh-rlhf":
        good = (SIGNALS / "hh_rlhf.jsonl").read_text().splitlines()[0]
        path = tmp_path / "deep.jsonl"
        path.write_text(good + "\n" + '{"chosen": ' + _deep() + ', "rejected": "x"}\n')
        line = 2
    else:
        good = (SIGNALS / "ultrafeedback.jsonl").read_text().splitlines()[0]
        path = tmp_path / "deep.jsonl"
        path.write_text(good + "\n" + '{"instruction": "x", "completions": ' + _deep() + "}\n")
        line = 2
    result = ingest(path, "deep", ledger, fmt=fmt)
    reconciles(result)
    assert {r["line"] for r in rejects(result)} >= {line}
    assert any("nested deeper" in r["reason"] or "must" in r["reason"] for r in rejects(result) if r["line"] == line)


def test_deep_nesting_in_a_suite_item_is_a_malformed_item(tmp_path):
    suite = tmp_path / "s"
    suite.mkdir()
    (suite / "suite.yaml").write_text("name: s\nversion: 1\nitems: items.jsonl\n")
    (suite / "items.jsonl").write_text('{"id": "a", "messages": ' + _deep() + "}\n")
    one_line_error(cli("suite", "validate", suite), "items.jsonl:1", "nested")


def test_a_line_cut_before_its_closing_brace_says_so(tmp_path, ledger):
    path = tmp_path / "cut.jsonl"
    path.write_text(json.dumps(pair(1)) + "\n" + json.dumps(pair(2))[:-1] + "\n")
    result = ingest(path, "cut", ledger)
    (reject,) = rejects(result)
    assert reject["line"] == 2 and "ends before its closing '}'" in reject["reason"]


# --- layouts: messages in the file's own terms ------------------------------------------------


def _uf(**changes) -> dict:
    row = json.loads((SIGNALS / "ultrafeedback.jsonl").read_text().splitlines()[0])
    row.update(changes)
    return row


def test_ultrafeedback_errors_name_the_files_fields():
    row = _uf()
    row["completions"][0]["response"] = 42
    with pytest.raises(RowError, match=r"'completions\[0\]'.response must be a non-empty string"):
        ultrafeedback_row(row)
    with pytest.raises(RowError, match="'source' must be a string"):
        ultrafeedback_row(_uf(source={"name": "x"}))


def test_an_ultrafeedback_source_object_is_a_rejected_row_not_dropped(tmp_path, ledger):
    lines = (SIGNALS / "ultrafeedback.jsonl").read_text().splitlines()
    bad = _uf(source={"collection": "x"})
    path = write_jsonl(tmp_path / "uf.jsonl", [json.loads(line) for line in lines] + [bad])
    result = ingest(path, "uf", ledger, fmt="ultrafeedback")
    reconciles(result)
    assert any(r["line"] == len(lines) + 1 and "'source' must be a string" in r["reason"] for r in rejects(result))


def test_annotator_and_source_take_the_same_values():
    from prefline.data.schema import optional_text

    assert pair_fields(pair(1, source=5, annotator=5))[4] == "5"
    assert optional_text({"annotator": 5}, "annotator") == optional_text({"source": 5}, "source") == "5"
    for field in ("source", "annotator"):
        for value in (5.5, {"a": 1}, [1], True):
            with pytest.raises(RowError, match=f"'{field}' must be a string"):
                optional_text({field: value}, field)


# --- files, names and options ----------------------------------------------------------------


def test_a_folder_given_as_the_input_file_says_it_is_a_folder(tmp_path):
    one_line_error(cli("data", "ingest", tmp_path, "--name", "d"), "is a folder")
    one_line_error(cli("data", "ingest", tmp_path / "nope.jsonl", "--name", "d"), "no such file")


@pytest.mark.parametrize("name", ["good\n", "a" * 101, "../x", "", "a/b", "-x"])
def test_bad_names_are_refused(name):
    with pytest.raises(PreflineError) as caught:
        check_name(name)
    if len(name) > 100:
        assert "limit is 100" in str(caught.value)


def test_a_name_with_a_trailing_newline_creates_nothing(tmp_path, prefline_home):
    path = write_jsonl(tmp_path / "a.jsonl", [pair(1)])
    one_line_error(cli("data", "ingest", path, "--name", "good\n"), "name")
    assert not (prefline_home / "datasets" / "good\n").exists()


def test_an_infinite_ratings_margin_is_refused(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("ratings:\n  margin: 1.0e+400\n")  # YAML reads this as infinity
    one_line_error(cli("data", "ingest", SIGNALS / "ratings.jsonl", "--name", "r", "--signal", "ratings", "--rules", rules),
                   "ratings.margin: Input should be a finite number")


def test_every_out_file_needs_an_existing_folder(tmp_path, ledger):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(3)])
    ingest(path, "d", ledger)
    missing = tmp_path / "nonexistent" / "dir"
    one_line_error(cli("data", "review", "export", "d", "--out", missing / "q.jsonl"), "does not exist")
    one_line_error(cli("data", "report", "d", "--html", missing / "r.html"), "does not exist")
    assert not (tmp_path / "nonexistent").exists()
    one_line_error(cli("data", "report", "d", "--html", tmp_path), "is a folder")


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_the_html_report_renders_for_every_kind_of_dataset(tmp_path, ledger, kind):
    name, _ = KIND_FILES[kind]
    ingest(SIGNALS / name, kind, ledger, signal=kind)
    out = tmp_path / f"{kind}.html"
    result = cli("data", "report", kind, "--html", out)
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!doctype html>") or "<html" in out.read_text()


def test_a_version_whose_files_are_gone_is_one_line(tmp_path, ledger):
    path = write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(3)])
    result = ingest(path, "gone", ledger)
    shutil.rmtree(Path(result.path).parent)
    one_line_error(cli("data", "report", "gone"), "missing")


# --- property-based: the row validators never fail any other way -------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["prompt", "chosen", "rejected", "response_a", "response_b", "choice", "judge", "verdict_ab", "verdict_ba",
          "responses", "response", "rating", "ratings", "annotator", "source", "slices", "weight", "axes", "session",
          "event", "response_id", "text", "instruction", "completions", "promt"]
messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]),
                                            "content": st.text(max_size=10)}), max_size=3)
rows = st.dictionaries(st.sampled_from(FIELDS), json_values | messages | st.text(max_size=30), max_size=8) | json_values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_every_kind_answers_any_row_with_a_signal_or_a_fate(row):
    """Whatever a row holds, each kind yields signals or Fates for it; no exception escapes."""
    for kind in ("pairs", "pairwise", "judge", "ratings", "events"):
        ctx = KindContext(source="f", rules=IngestRules())
        items = list(SIGNAL_KINDS[kind].read([RawRecord(1, "", row)], ctx))
        assert all(isinstance(item, Fate) or item.lines == [1] for item in items)
        for item in items:
            if isinstance(item, Fate):
                assert item.reason and "\n" not in item.reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_layout_converters_raise_only_row_errors(row):
    for convert in (hh_row, ultrafeedback_row):
        try:
            out = convert(row)
        except RowError as exc:
            assert str(exc)
        else:
            assert isinstance(out, dict)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_no_prompt_is_ever_guessed_from_two_strings(chosen, rejected):
    with pytest.raises(RowError, match="missing field"):
        pair_fields({"chosen": chosen, "rejected": rejected})


def test_parquet_reader_rejects_nothing_silently(tmp_path, ledger):
    table = pa.table({"prompt": ["Hi?", "Hey?", None], "chosen": ["Hello.", "Hey.", "x"], "rejected": ["Go.", "No.", "y"],
                      "note": ["a", None, "c"]})
    path = tmp_path / "p.parquet"
    pq.write_table(table, path)
    result = ingest(path, "pq", ledger)
    reconciles(result)
    assert result.n_accepted == 2 and result.n_rejected == 1 and result.unknown_fields == {"note": 2}


# --- suites: everything a run needs, checked before anything is generated ------------------------

GOOD_ITEM = {"id": "a", "messages": [{"role": "user", "content": "Say hi in five words."}], "slices": {"intent": "chat"}}


def _suite(tmp_path: Path, header: str, items: list[dict] | None = None) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir(exist_ok=True)
    (folder / "suite.yaml").write_text(header)
    (folder / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in (items or [GOOD_ITEM])))
    return folder


@pytest.mark.parametrize("header, needle", [
    ("name: s\nversion: abc\nitems: items.jsonl\n", "version: Input should be a valid integer"),
    ("name: s\nversion: -3\nitems: items.jsonl\n", "version: Input should be greater than or equal to 1"),
    ("name: s\nversion: 1\nitems: items.jsonl\nowner: me\n", "owner: Extra inputs are not permitted"),
    ("name: s\nversion: 1\nitems: items.jsonl\nscorers: [length, no_such_scorer]\n", "unknown scorer(s) no_such_scorer"),
    ("name: s\nversion: 1\nitems: items.jsonl\ndescription: [unclosed\n", "suite.yaml:5:1: not valid YAML"),
])
def test_a_bad_suite_header_is_one_line(tmp_path, header, needle):
    folder = _suite(tmp_path, header)
    for command in ("validate", "freeze", "show"):
        one_line_error(cli("suite", command, folder), needle)


@pytest.mark.parametrize("change, needle", [
    ({"constraints": [{"type": "no_such_instruction"}]}, "unknown instruction type 'no_such_instruction'"),
    ({"constraints": [{"type": "max_words", "params": {}}]}, "missing param"),
    ({"json_schema": {"type": "no-such-type"}}, "json_schema is not a valid JSON Schema"),
    ({"expected_tool_call": {"name": "get_weather"}}, "offers no tools"),
])
def test_unscorable_items_are_refused_before_generation(tmp_path, ledger, change, needle):
    folder = _suite(tmp_path, "name: s\nversion: 1\nitems: items.jsonl\n", [{**GOOD_ITEM, **change}])
    for command in ("validate", "freeze"):
        one_line_error(cli("suite", command, folder), "items.jsonl:1", needle)
    one_line_error(cli("eval", "--suite", folder, "--model", "unused"), needle)
    assert ledger.list_runs() == []  # no run left `running`: it never started


def test_validate_reports_a_frozen_suite_whose_files_changed(tmp_path):
    header = "name: s\nversion: 1\nitems: items.jsonl\nslice_counts:\n  intent: {chat: 1}\n"
    folder = _suite(tmp_path, header)
    assert cli("suite", "freeze", folder).exit_code == 0
    (folder / "items.jsonl").write_text(json.dumps({**GOOD_ITEM, "messages": [{"role": "user", "content": "Changed."}]}) + "\n")
    one_line_error(cli("suite", "validate", folder), "was frozen with hash", "changed: a")


def test_validate_checks_slice_counts_and_names_a_missing_suite_yaml(tmp_path):
    folder = _suite(tmp_path, "name: s\nversion: 1\nitems: items.jsonl\n")
    result = cli("suite", "validate", folder)
    assert result.exit_code == 0 and "warning: the header has no slice_counts" in result.stderr
    (folder / "suite.yaml").write_text("name: s\nversion: 1\nitems: items.jsonl\nslice_counts:\n  intent: {chat: 2}\n")
    one_line_error(cli("suite", "validate", folder), "slice_counts.intent")
    (folder / "suite.yaml").unlink()
    one_line_error(cli("suite", "validate", folder), "has no suite.yaml")
