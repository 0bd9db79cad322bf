"""The shape of the package: stages import only stages below them, and only the ledger issues SQL.

Both read the source with ``ast`` (imports inside functions count too), so they fail on the
line that breaks the rule, naming the module and what it imported or touched.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import prefline

ROOT = Path(prefline.__file__).parent

# The direction of imports (docs/architecture.md): a module may import its own stage and any stage
# with a lower rank. Training imports evals (its drift probes generate with an eval backend and
# score with eval scorers); evals never imports train.
RANK = {"base": 0, "data": 1, "evals": 2, "train": 3, "gate": 4, "release": 5, "report": 6, "top": 7}
BASE = {"ledger", "config", "models", "stats", "text", "registry", "hashing", "home", "paths", "errors", "provenance"}
TOP = {"cli", "demo", "doctor", "docs_cli", "__main__", "__init__"}

SQL_MODULES = ("sqlalchemy", "sqlite3", "psycopg", "psycopg2")
LEDGER_PRIVATE = {"_insert", "_update", "_rows", "_one", "engine", "md"}


def stage_of(module: str) -> str:
    """``prefline.data.ingest`` -> ``data``; a module of the package root is base or top."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    if head in RANK:
        return head
    if head in BASE:
        return "base"
    if head in TOP:
        return "top"
    raise AssertionError(f"{module}: no stage assigned; add it to RANK, BASE or TOP in {__file__}")


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts), path


DOTTED = re.compile(r"prefline(?:\.\w+)+(?::\w+)?")


def imported(tree: ast.AST, module: str, is_package: bool):
    """(line, absolute module name) of every import in a module, relative ones resolved, and of every
    module named in a string (``importlib.import_module("prefline.x")``, a lazy ``"module:attr"`` entry)
    outside docstrings."""
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings and DOTTED.fullmatch(node.value):
            yield node.lineno, node.value.partition(":")[0]
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(package + ([base] if base else []))
            yield node.lineno, base
            for alias in node.names:  # ``from prefline import data`` imports the stage itself
                yield node.lineno, f"{base}.{alias.name}"


def test_stages_import_only_stages_below_them():
    wrong = []
    for module, path in modules():
        mine = stage_of(module)
        for line, name in imported(ast.parse(path.read_text()), module, path.name == "__init__.py"):
            if not name.startswith("prefline.") or name.count(".") < 1:
                continue
            try:
                theirs = stage_of(name)
            except AssertionError:
                continue  # ``from prefline.x import name`` of something that is not a module
            if RANK[theirs] > RANK[mine]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {mine} imports {name} ({theirs}, a stage above it)")
    assert not wrong, "\n".join(wrong)


def test_only_the_ledger_issues_sql():
    wrong = []
    for module, path in modules():
        if module == "prefline.ledger":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in SQL_MODULES:
                    wrong.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: imports {name}")
            if isinstance(node, ast.Attribute) and node.attr in LEDGER_PRIVATE:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: touches the ledger's .{node.attr}")
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "t":
                wrong.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: reads a ledger table (.t[...])")
    assert not wrong, "\n".join(wrong)


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The two rules above, applied to code that breaks them, find every break."""
    tree = ast.parse('"""About prefline.train.run."""\nimport sqlalchemy as sa\nfrom prefline.gate import compare\n'
                     "def f(ledger):\n    from prefline.evals.scorers import style\n    importlib.import_module('prefline.release')\n"
                     "    return ledger._rows(ledger.t['x'])\n")
    found = [name for _, name in imported(tree, "prefline.data.x", False) if name.startswith("prefline.")]
    assert {stage_of(n) for n in found} == {"gate", "evals", "release"}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert {"_rows", "t"} <= attrs
