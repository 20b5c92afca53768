"""Imports flow one way: front ends -> run -> checks -> measure -> parse / capture -> dialects -> model, errors.

Every module under harness/ and reference_server/ is read with ``ast`` (nothing is imported) and every import it
makes is an edge, function-local ones included. The tests fail on a cycle between modules, on an import from a lower
layer into a higher one or between two units of one layer, on a module no layer claims (a new package: give it a
place in LAYERS), and on reference_server importing more of harness than it may. reports/ and schemas/ are outside
these two trees and outside this test.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ("harness", "reference_server")

# Bottom to top. A layer holds units; a unit holds patterns: "a.b" is that module, "a.b.*" the package a.b and
# everything in it. A module belongs to the unit of its most specific pattern. It may import modules of its own unit
# and of any lower layer; never those of another unit of its own layer, never those of a higher layer.
LAYERS: list[tuple[str, list[list[str]]]] = [
    ("foundation: shared data, errors, files", [["harness", "harness.errors", "harness.model", "harness.result",
                                                 "harness.atomic"]]),
    ("wire protocols", [["harness.dialects.*"]]),
    ("capture, parse and the reference server (independent of each other)",
     [["harness.capture.*"], ["harness.parse.*"], ["reference_server.*"]]),
    ("measure; real clients", [["harness.measure.*"], ["harness.clients.*"]]),
    ("checks", [["harness.checks.*"]]),
    ("run: the engine", [["harness.run.*"]]),
    ("front-end support: shared options, console, bench and grade pieces",
     [["harness.cli.options"], ["harness.cli.console"], ["harness.bench.*"], ["harness.grade.*"]]),
    ("backends for bench and grade", [["harness.distributed.*"]]),
    ("commands", [["harness.cli.*"], ["harness.bench.cli"], ["harness.grade.cli"], ["harness.pytest.*"],
                  ["reference_server.cli"]]),
    ("entry points and documented re-exports",
     [["harness.cli", "harness.cli.__main__", "harness.__main__"], ["reference_server.__main__"],
      ["harness.sse"], ["harness.ndjson"], ["harness.conformance_tests"]]),
]

# What reference_server may use of harness (it is a separate program the harness checks); its `serve` front end
# also builds its options with the shared option builders.
SERVER_MAY_IMPORT = ("harness.errors", "harness.dialects")
SERVER_FRONT_END = {"reference_server.cli": ("harness.cli.options",)}


def _modules() -> dict[str, Path]:
    found = {}
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_extension(name: str) -> bool:
    """An extension module (the optional C speedup): a leaf, whether or not it was built."""
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".c").exists() or any(base.parent.glob(base.name + ".*.so"))


def _target(module: str, name: str | None) -> str | None:
    """The module an import reaches: ``from module import name`` (a submodule or a name in it), or ``import module``."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    if name is not None and _is_extension(f"{module}.{name}"):
        return None
    if module in MODULES:
        return module
    return None


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in TREES:
                    out.add(_target(alias.name, None) or alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            if module.split(".")[0] not in TREES:
                continue
            for alias in node.names:
                target = _target(module, alias.name)
                if target is not None:
                    out.add(target)
                elif not _is_extension(f"{module}.{alias.name}"):
                    out.add(module)
    out.discard(name)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> tuple[int, int] | None:
    """(layer index, unit index) of the most specific pattern matching ``module``."""
    best, best_len = None, -1
    for li, (_, units) in enumerate(LAYERS):
        for ui, patterns in enumerate(units):
            for pattern in patterns:
                if pattern.endswith(".*"):
                    base = pattern[:-2]
                    hit = module == base or module.startswith(base + ".")
                    size = len(base)
                else:
                    hit = module == pattern
                    size = len(pattern) + 1  # an exact name beats a package pattern of the same name
                if hit and size > best_len:
                    best, best_len = (li, ui), size
    return best


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if _unit(m) is None]
    assert not missing, f"no layer for {missing}: add them to LAYERS in {Path(__file__).name}"


def test_no_import_goes_up_or_sideways():
    wrong = []
    for module, targets in GRAPH.items():
        here = _unit(module)
        for target in sorted(targets):
            there = _unit(target)
            if here is None or there is None or here == there:
                continue
            if there[0] > here[0]:
                wrong.append(f"{module} ({LAYERS[here[0]][0]}) imports {target} ({LAYERS[there[0]][0]}): upward")
            elif there[0] == here[0]:
                wrong.append(f"{module} imports {target}: two units of the layer '{LAYERS[here[0]][0]}'")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    """Tarjan's strongly connected components over the module graph: any component of two or more is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(GRAPH) + 100))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_reference_server_uses_only_errors_and_dialects_of_harness():
    wrong = []
    for module, targets in GRAPH.items():
        if not module.startswith("reference_server"):
            continue
        allowed = SERVER_MAY_IMPORT + SERVER_FRONT_END.get(module, ())
        for target in sorted(targets):
            if target.startswith("harness") and not any(target == a or target.startswith(a + ".") for a in allowed):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("public, defined", [
    ("harness.sse.SSEParser", "harness.parse.sse.SSEParser"),
    ("harness.sse.SSEEvent", "harness.parse.sse_base.SSEEvent"),
    ("harness.ndjson.NDJSONParser", "harness.parse.ndjson.NDJSONParser"),
    ("harness.parse.parse_capture", "harness.parse.media.parse_capture"),
    ("harness.capture.capture", "harness.capture.core.capture"),
    ("harness.capture.make_client", "harness.capture.client.make_client"),
    ("harness.cli.main", "harness.cli.main"),
])
def test_documented_paths_still_work(public, defined):
    def get(path: str):
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    assert get(public) is get(defined)


def test_python_dash_m_entry_points():
    for module in ("harness", "harness.cli", "reference_server"):
        proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"python -m {module} --help: {proc.stderr[-2000:]}"
