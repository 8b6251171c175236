"""The import rules of docs/architecture.md, checked on the source (AST, every import including those inside
functions): a module imports only its own component or components of lower layers, never a sibling of its
own layer nor anything above; and no import cycle exists anywhere, inside a component either."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "enrol", "firmware")

# top to bottom; each entry a component: a module or package (and everything under it), or a tuple of them
# that form one component. Keep in step with the table in docs/architecture.md.
LAYERS = [
    ("main", ["edge.__main__"]),
    ("entry", ["edge.cli", "enrol.cli"]),
    ("commands", ["edge.audit.cli", "edge.watchlist.cli", "edge.console.cli", "edge.eval.cli", "edge.deployment_cli",
                  "edge.doctor", "edge.provision", "edge.oversight.cli", "firmware.cli", "firmware.usb",
                  "enrol.authorise"]),
    ("programs", ["edge.pipeline", "edge.console", "edge.eval", "edge.oversight",
                  ("edge.audit.report", "edge.audit.report_lists", "edge.audit.report_matches",
                   "edge.audit.report_render", "edge.audit.report_runs"), "edge.audit.evidence",
                  "enrol.build", "enrol.register", "enrol.keys", ("firmware.update", "firmware.bundle")]),
    ("services", ["edge.watchlist.service", "edge.alerts", "edge.audit"]),
    ("deployments", ["edge.deployment"]),
    ("formats", ["edge.watchlist", "edge.alerts.messages"]),
    ("face", ["edge.face"]),
    ("cli support", ["edge.cli_options"]),
    ("keys and config", ["edge.identity", "edge.config", "edge.sdnotify", "edge.walstore"]),
    ("primitives", ["edge.codec", "edge.files"]),
    ("errors", ["edge.errors"]),
]
# imports against the layers still to be removed (issue 19), each with its fix; a new one fails the test
PENDING: dict[tuple[str, str], str] = {}
NEUTRAL = {"edge", "enrol", "firmware"}  # the package roots (edge/__init__.py: the version only)


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    def resolve(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in mods.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {resolve(a.name) for a in node.names if a.name.split(".")[0] in PACKAGES}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in PACKAGES:
                found |= {resolve(f"{node.module}.{a.name}") if f"{node.module}.{a.name}" in mods
                          else resolve(node.module) for a in node.names}
        graph[name] = found - {name, ""}
    return graph


def component(mod: str) -> tuple[int, str] | None:
    """(layer index, component name) of a module: the longest component prefix that names it."""
    best = None
    for i, (_, comps) in enumerate(LAYERS):
        for comp in comps:
            for c in (comp if isinstance(comp, tuple) else (comp,)):
                if (mod == c or mod.startswith(c + ".")) and (best is None or len(c) > best[2]):
                    best = (i, comp if isinstance(comp, str) else comp[0], len(c))
    return best[:2] if best else None


def test_every_module_has_a_layer():
    missing = [m for m in modules() if m not in NEUTRAL and component(m) is None]
    assert not missing, f"modules in no layer of docs/architecture.md: {missing}"


def test_imports_go_only_downward():
    graph = imports(modules())
    bad = []
    for mod, targets in sorted(graph.items()):
        if mod in NEUTRAL:
            continue
        here = component(mod)
        for t in sorted(targets - NEUTRAL):
            there = component(t)
            if there[1] == here[1] or there[0] > here[0]:
                continue
            if (mod, t) in PENDING:
                continue
            why = "a sibling in its layer" if there[0] == here[0] else "a higher layer"
            bad.append(f"{mod} ({LAYERS[here[0]][0]}) imports {t} ({LAYERS[there[0]][0]}): {why}")
    assert not bad, f"{len(bad)} import(s) against the layers:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = imports(modules())
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]) if t in path else f"{m} -> {t}")
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_pending_exceptions_are_still_needed():
    graph = imports(modules())
    stale = [f"{a} -> {b}" for a, b in PENDING if b not in graph.get(a, set())]
    assert not stale, f"fixed, remove from PENDING: {stale}"


def test_every_error_class_is_an_edge_error():
    """docs/architecture.md: errors a user can cause go up as EdgeError (or a subclass), which only the commands
    turn into one sentence and an exit code (MessageError was a ValueError: a bad message became a traceback)."""
    classes = {}
    for path in modules().values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                classes[node.name] = (f"{path.relative_to(ROOT)}:{node.lineno}", bases)
    ours = {"EdgeError"}
    while grown := {n for n, (_, bases) in classes.items() if n not in ours and set(bases) & ours}:
        ours |= grown
    other = [f"{where} {name}({', '.join(bases)})" for name, (where, bases) in classes.items()
             if name not in ours and any(b.endswith(("Error", "Exception")) for b in bases)]
    assert not other, f"error classes that are not EdgeErrors: {other}"
    assert "MessageError" in ours and "BundleError" in ours and "ConfigError" in ours
