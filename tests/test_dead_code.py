"""No dead code: every function, method and class defined in edge/, enrol/ and firmware/ is named somewhere
(called, imported, passed, or named in a string such as a config key, a click command or a unit file).
Issue 19 found api.face_distance, api.landmarks and Config.camera defined and never used; this keeps the next
one from staying (by name: a method whose name is also used for something else can still slip through).
Decorated definitions (click commands, routes, properties) are used by their decorator; a docstring naming a
function is not a use."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFINED_IN = ("edge", "enrol", "firmware")
NAMED_IN = (*DEFINED_IN, "bench", "tests", "demo")
TEXT = ("Makefile", "pyproject.toml", "systemd", "firmware", ".ci")  # entry points, units, install scripts
CALLED_BY_LIBRARIES = {  # name -> who calls it
    "callback": "pyzmq's ZAP authenticator (the channel is its credentials provider)",
}


def docstrings(tree: ast.AST) -> set[int]:
    return {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def names() -> Counter[str]:
    """Every name used in the code (a docstring or comment mentioning it is not a use)."""
    seen: Counter[str] = Counter()
    for d in NAMED_IN:
        for p in (ROOT / d).rglob("*.py"):
            tree = ast.parse(p.read_text(), str(p))
            docs = docstrings(tree)
            for n in ast.walk(tree):
                if isinstance(n, ast.Name):
                    seen[n.id] += 1
                elif isinstance(n, ast.Attribute):
                    seen[n.attr] += 1
                elif isinstance(n, ast.keyword) and n.arg:
                    seen[n.arg] += 1
                elif isinstance(n, ast.alias):
                    seen[n.name.rpartition(".")[2]] += 1
                elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
                    seen.update(re.findall(r"\w+", n.value.replace("-", "_")))
    for t in TEXT:
        for p in [ROOT / t] if (ROOT / t).is_file() else (ROOT / t).rglob("*"):
            if p.is_file() and p.suffix != ".py":
                seen.update(re.findall(r"\w+", p.read_text(errors="replace").replace("-", "_")))
    return seen


def test_every_definition_is_used():
    seen = names()
    dead = []
    for d in DEFINED_IN:
        for p in sorted((ROOT / d).rglob("*.py")):
            for n in ast.walk(ast.parse(p.read_text(), str(p))):
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not n.decorator_list \
                        and not n.name.startswith("__") and not seen[n.name] and n.name not in CALLED_BY_LIBRARIES:
                    dead.append(f"{p.relative_to(ROOT)}:{n.lineno} {n.name}")
    assert not dead, f"defined and never used: {dead}"
