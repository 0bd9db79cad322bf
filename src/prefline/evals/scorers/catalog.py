"""The scorer catalog a user browses (``prefline scorers list|show``): each registered scorer's
name, section, layer, category, axis, metrics with directions, and the suite item fields it reads.

The fields are read off the code: every ``item.FIELD`` in the scorer function and in the
functions of its module that it calls, directly or not. So the catalog cannot drift from what
the scorer does, and a suite author learns which fields (``reference``, ``sources``, ...) an
item needs for the scorer to score it.
"""

from __future__ import annotations

import ast
import inspect
import sys
from functools import lru_cache
from typing import Any

from prefline.evals.scorers import SCORERS, Scorer, get_scorers

# Fields every scorer may use through the conversation itself; listing them says nothing.
_ALWAYS = {"id", "messages"}


@lru_cache(maxsize=None)
def _module_functions(module_name: str) -> dict[str, ast.AST]:
    source = inspect.getsource(sys.modules[module_name])
    tree = ast.parse(source)
    return {node.name: node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def item_fields(scorer: Scorer) -> list[str]:
    """The suite item fields the scorer reads (beyond ``id`` and ``messages``), in the item schema's order."""
    from prefline.evals.suite import SuiteItem

    fields = set(SuiteItem.model_fields) - _ALWAYS
    seen, todo, found = set(), [(scorer.fn.__module__, scorer.fn.__name__)], set()
    while todo:
        module, name = todo.pop()
        functions = _module_functions(module)
        if (module, name) in seen or name not in functions:
            continue
        seen.add((module, name))
        namespace = vars(sys.modules[module])
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Attribute) and node.attr in fields and isinstance(node.value, ast.Name) and node.value.id in ("item", "it", "i"):
                found.add(node.attr)
            elif isinstance(node, ast.Name) and node.id in functions:
                todo.append((module, node.id))
            elif isinstance(node, ast.Name) and node.id in namespace:  # a helper imported from another prefline module
                target = getattr(namespace[node.id], "__module__", "") or ""
                if target.startswith("prefline.") and callable(namespace[node.id]):
                    todo.append((target, getattr(namespace[node.id], "__name__", node.id)))
    return [f for f in SuiteItem.model_fields if f in found]


def describe(scorer: Scorer) -> dict[str, Any]:
    return {"name": scorer.name, "section": scorer.section, "layer": scorer.layer, "category": scorer.category, "axis": scorer.axis,
            "scope": scorer.scope, "metrics": dict(scorer.metrics), "reads": item_fields(scorer), "description": scorer.description}


def catalog() -> list[dict[str, Any]]:
    """Every registered scorer, grouped style, behaviour, evidence (the order reports use)."""
    get_scorers(None)
    order = {"style": 0, "behaviour": 1, "evidence": 2, "preference": 3}
    return [describe(s) for s in sorted(SCORERS.values(), key=lambda s: (order.get(s.section, 9), s.name))]


def find(name: str) -> dict[str, Any]:
    return describe(get_scorers([name])[0])
