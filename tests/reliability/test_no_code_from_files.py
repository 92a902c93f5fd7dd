"""Nothing in the package executes content read from a file: no pickle, no eval/exec.

A run file, bench config, world state or model file from someone else must only ever
be parsed as data. The check reads the sources (ast), so a new ``pickle.load`` or an
``np.load`` without ``allow_pickle=False`` fails here, not on a user's machine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("instruments", "protocols", "analysis", "gui", "data")
SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}


def offences(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"from {node.module} import")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if isinstance(func, ast.Name) and name in UNSAFE_CALLS:
                found.append(f"{name}() at line {node.lineno}")
            if name == "load" and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") in ("np", "numpy"):
                safe = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant) and k.value.value is False
                           for k in node.keywords)
                if not safe:
                    found.append(f"np.load without allow_pickle=False at line {node.lineno}")
            if name == "load" and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "torch":
                safe = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
                if not safe:
                    found.append(f"torch.load without weights_only=True at line {node.lineno}")
    return found


def test_sources_were_found():
    """The scan covers the package (guards against a path change silently emptying it)."""
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_no_pickle_or_eval_in_source(path):
    """No module unpickles, evaluates or executes anything (file content included)."""
    assert offences(ast.parse(path.read_text(), filename=str(path))) == []
