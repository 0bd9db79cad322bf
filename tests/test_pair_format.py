"""The stored form of a pair does not drift: the shipped demo data and the tutorial's pairs, ingested
along every path (streamed plain pairs, assembled, grouped out of core under majority and Dawid-Skene)
and mixed as the demo mixes them, give the same content hashes, the same rows and the same Parquet
schemas as recorded here; and the Arrow schema of ``pairs.parquet`` is the :class:`Pair` definition.

The recorded values were computed by this test's ``stored`` on the code before the pair had one
definition; a change that alters any of them changes what users' datasets hash to, and must say so.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from prefline.data.ingest import ingest
from prefline.data.mix import mix
from prefline.data.schema import Pair, PairContent, pair_fields
from prefline.data.store import pairs_table, schemas, tables
from prefline.demo import SIGNALS, demo_data_path
from prefline.hashing import content_hash

TUTORIAL = Path(__file__).parents[1] / "examples" / "tutorial" / "pairs.jsonl"

# (dataset name, file, ingest options): each ingest path at least once
INGESTS = [
    *[(f"demo-{file}", demo_data_path(f"signals/{file}.jsonl"), {"signal": kind}) for file, kind in SIGNALS],
    ("ds-votes", demo_data_path("signals/votes.jsonl"), {"signal": "pairwise", "consensus": "dawid-skene"}),
    ("ds-ratings", demo_data_path("signals/ratings.jsonl"), {"signal": "ratings", "consensus": "dawid-skene"}),
    ("none-votes", demo_data_path("signals/votes.jsonl"), {"signal": "pairwise", "consensus": "none"}),
    ("none-ratings", demo_data_path("signals/ratings.jsonl"), {"signal": "ratings", "consensus": "none"}),
    ("demo-pairs", demo_data_path("pairs.jsonl"), {}),
    ("heldout", demo_data_path("heldout.jsonl"), {}),
    ("majority-pairs", demo_data_path("pairs.jsonl"), {"consensus": "majority"}),
    ("tutorial", TUTORIAL, {}),
]

# version -> (content hash, hash of pairs.parquet's rows, hash of signals.parquet's rows or None)
EXPECTED = {
    "demo-votes@1": ("438661f5676b7cf6d6e943f09a0529dbf9665242d20091877776d1eab451daf2",
        "49d43482b0d88ee1609fa7b9a1996f90786b51202aff046a498e5bcdc406c12d",
        "960b026b2b102750337a44d613cada40e1b6a5bfd9a2291d21c215e5b150660f"),
    "demo-ratings@1": ("2ea0728bf28dfb9a2ad72580d2a515865b206dc47a8903ec0b64f03b8432e125",
        "c71ad00cad03275686df848ba3fbaca638baa8b7a15adac2850577e1bfa24205",
        "96b64fed562dfd08593d80dffef90d8bc2d792acb5ed8c5e58fc6333f39d9e27"),
    "demo-events@1": ("24ce38b0ced344c0faebb05e0b1cc88e5e85c3c5f1d625b7a40784f37f8adbe7",
        "f51d218608fed98303889648da3f6fac5ee31a9c5c43c18093176b38b98d0816",
        "af83832eb54a3d53b4274884d3c63409d4cd50cbdc0ec80ee27234f88aa1faa8"),
    "demo-judged@1": ("cb8981d13e2d711a468dca982c1918264bd6e7440490f58d7dcd8721f1a43990",
        "692f6b3f8c188dbf03634eb42b07335c5cd4ea7ff2ca43acb719b20a868757b4",
        "4a49ac4cd66e7421228904d92563b754067cdd3f5ce0769ca6eef006fcffda05"),
    "ds-votes@1": ("df7aaa4277f12840745d23d43b03bf8d44ecb633bd82719620430301393557c2",
        "c139d3203aad32f7368b904063f8aa7bb5ba61869c63edcce390493a77811d71",
        "960b026b2b102750337a44d613cada40e1b6a5bfd9a2291d21c215e5b150660f"),
    "ds-ratings@1": ("2ea0728bf28dfb9a2ad72580d2a515865b206dc47a8903ec0b64f03b8432e125",
        "65db8ea6840812502e21ab5ac134d93628097cbb0440e2e277df87aeeeafc4a5",
        "96b64fed562dfd08593d80dffef90d8bc2d792acb5ed8c5e58fc6333f39d9e27"),
    "none-votes@1": ("3e37a3338940887a474476974e5c92befe0db49d68e26122c7597b8736bbeb5d",
        "eb003eac622f034144834d3d892858dabe680071ef595b265bfada6aa7781819",
        "0159fde46250c86a18cf27344b0df9279962980b29a7fbfba693ce4e782cebe5"),
    "none-ratings@1": ("2ea0728bf28dfb9a2ad72580d2a515865b206dc47a8903ec0b64f03b8432e125",
        "5a67f9500374496cf07f9308df02eb8273bd084d1cb3d56e277774529699d392",
        "96b64fed562dfd08593d80dffef90d8bc2d792acb5ed8c5e58fc6333f39d9e27"),
    "demo-pairs@1": ("ec6a14136032acbc286ae3115ddbdcd033b21890fa124c760a26e16265f09c7e",
        "72eba1f52aca73351defea148963ceb5d7db8d92231923c592153ffce8434e26",
        None),
    "heldout@1": ("42d2351748035ab7401f1827d3b735e1bdde0593182e469f72ddbc856876b226",
        "8cba3d970f92dbf645536561213b51f4aa315d8869872e8ac1da2f8c618b1489",
        None),
    "majority-pairs@1": ("ec6a14136032acbc286ae3115ddbdcd033b21890fa124c760a26e16265f09c7e",
        "bac041e7b4cd58234a66d542c57927a9653f8c20490186c1e9d020e347147081",
        "dc6f98919de23ab19b9d561b91c615000cb4068d0077e10e894b116ba89ed5fb"),
    "tutorial@1": ("8517781178b4b3ebde494031c5c556b3d0a011b6d2e9bb85f874349ade1a77b7",
        "4247ca2782e9d033f7f133e6c794e9098ec75f3380ae1effa56375487e564332",
        None),
    "demo@1": ("ab03d8e36ce0c31db7c046f344ba832a366244bae39771f1dc27af264d50ad11",
        "999eeae62493c23b447c03e4a4ccc702e25f25b1d04f83546f1baa116cfa7e62",
        None),
    "demo@2": ("d6a0f5e899a953500fc8fc992048a0d5bb691e86b1849c69a572647dc66d3b31",
        "f81b7f87feb5f56c593d2477f74f810c8cdc658210a97e0767e83fed475875ce",
        None),
}

PAIRS_SCHEMA = (
    "id: string\n"
    "prompt: list<element: struct<role: string, content: string>>\n"
    "  child 0, element: struct<role: string, content: string>\n"
    "      child 0, role: string\n"
    "      child 1, content: string\n"
    "chosen: list<element: struct<role: string, content: string>>\n"
    "  child 0, element: struct<role: string, content: string>\n"
    "      child 0, role: string\n"
    "      child 1, content: string\n"
    "rejected: list<element: struct<role: string, content: string>>\n"
    "  child 0, element: struct<role: string, content: string>\n"
    "      child 0, role: string\n"
    "      child 1, content: string\n"
    "slices: string\n"
    "source: string\n"
    "weight: double\n"
    "confidence: double\n"
    "consensus: string\n"
    "rule: string\n"
    "n_signals: int64\n"
    "axes: string\n"
    "signals: string\n"
    "key: string"
)
SIGNALS_SCHEMA = (
    "key: string\n"
    "label: string\n"
    "kind: string\n"
    "rule: string\n"
    "source: string\n"
    "annotator: string\n"
    "confidence: double\n"
    "excluded: string\n"
    "signal: string\n"
    "prompt: list<element: struct<role: string, content: string>>\n"
    "  child 0, element: struct<role: string, content: string>\n"
    "      child 0, role: string\n"
    "      child 1, content: string\n"
    "a: list<element: struct<role: string, content: string>>\n"
    "  child 0, element: struct<role: string, content: string>\n"
    "      child 0, role: string\n"
    "      child 1, content: string\n"
    "b: list<element: struct<role: string, content: string>>\n"
    "  child 0, element: struct<role: string, content: string>\n"
    "      child 0, role: string\n"
    "      child 1, content: string"
)


def _rows_hash(path: Path) -> str | None:
    return content_hash(pq.read_table(path).to_pylist()) if path.is_file() else None


def stored(ledger) -> tuple[dict[str, tuple[str, str, str | None]], set[str], set[str]]:
    """Every version the cases make -> (content hash, rows hash, signals rows hash); the schema texts seen."""
    refs = []
    for name, path, options in INGESTS:
        got = ingest(path, name, ledger, **options)
        refs.append(f"{got.name}@{got.version}")
    parts = [f"demo-{file}@1" for file, _ in SIGNALS]
    refs.append(f"{mix('demo', [(p, 1.0) for p in parts], ledger)['dataset']['name']}@1")
    balanced = mix("demo", [("demo@1", 1.0)], ledger, balance_length=True)
    refs.append(f"demo@{balanced['dataset']['version']}")
    found, pair_schemas, signal_schemas = {}, set(), set()
    for ref in refs:
        dataset = ledger.get_dataset(ref)
        pairs = Path(dataset["path"])
        signals = pairs.with_name("signals.parquet")
        found[ref] = (dataset["content_hash"], _rows_hash(pairs), _rows_hash(signals))
        pair_schemas.add(pq.read_schema(pairs).remove_metadata().to_string())
        if signals.is_file():
            signal_schemas.add(pq.read_schema(signals).remove_metadata().to_string())
    return found, pair_schemas, signal_schemas


def test_shipped_data_stores_as_recorded(ledger):
    found, pair_schemas, signal_schemas = stored(ledger)
    assert found == EXPECTED
    assert pair_schemas == {PAIRS_SCHEMA}
    assert signal_schemas == {SIGNALS_SCHEMA}


MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def test_the_arrow_schema_of_pairs_is_the_pair_definition():
    """Column for field, in order: message lists for the conversation, JSON text for the other dicts and
    lists, string / double / int64 for str / float / int; every column nullable, as files always had it."""
    pairs_schema, _ = schemas()
    assert pairs_schema.names == [f.name for f in fields(Pair)]
    expected = {"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES, "slices": pa.string(), "axes": pa.string(),
                "signals": pa.string(), "weight": pa.float64(), "confidence": pa.float64(), "n_signals": pa.int64()}
    for column in pairs_schema:
        assert column.type == expected.get(column.name, pa.string()), column.name
        assert column.nullable
    required = [f.name for f in fields(Pair) if f.default is MISSING and f.default_factory is MISSING]
    assert required == ["prompt", "chosen", "rejected"]


def test_an_input_row_is_the_pair_fields_ingest_does_not_fill_in():
    row = {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away.", "slices": {"intent": "chat"}, "source": "s.jsonl", "weight": 0.5}
    content = pair_fields(row)
    assert isinstance(content, PairContent)
    assert PairContent._fields == ("prompt", "chosen", "rejected", "slices", "source", "weight")
    assert content.chosen == [{"role": "assistant", "content": "Hello."}] and content.weight == 0.5
    pair = Pair(*content)
    assert pair.id and pair.confidence is None and pair.signals == []
    # a Pair made in memory becomes the table a stored version has: same columns, same types, JSON text round-trips
    table = pairs_table([pair])
    assert table.schema.equals(schemas()[0])
    (stored,) = table.to_pylist()
    assert stored["slices"] == '{"intent": "chat"}' and stored["axes"] == "{}" and stored["signals"] == "[]"
    assert {k: v for k, v in stored.items() if k not in ("slices", "axes", "signals")} == \
        {k: v for k, v in pair.to_row().items() if k not in ("slices", "axes", "signals")}
    assert tables([pair], None)[0].equals(table)
