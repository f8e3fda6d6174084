"""The engine is GUI-free: it imports no Qt, pyqtgraph, vtk or app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"PySide6", "PyQt5", "PyQt6", "pyqtgraph", "superqt", "vtk", "app"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_sources_import_no_gui():
    offenders = {}
    for path in sorted((ROOT / "engine").rglob("*.py")):
        bad = _imported_roots(path) & FORBIDDEN
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_importing_engine_loads_no_qt_module():
    code = ("import sys, importlib, pkgutil, engine\n"
            "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in "
            f"{sorted(FORBIDDEN)!r})\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_import_linter_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        import pytest
        pytest.skip("import-linter is not installed")
    out = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_no_import_cycles():
    """Strongly connected components of the module import graph of app and engine: none."""
    grimp = __import__("pytest").importorskip("grimp")
    graph = grimp.build_graph("app", "engine")
    mods = sorted(graph.modules)
    adj = {m: [d for d in graph.find_modules_directly_imported_by(m) if d in graph.modules] for m in mods}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in mods:
        if m not in index:
            visit(m)
    assert cycles == []


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in _sources("app") + _sources("engine")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert long == {}


def test_app_state_imports_no_widgets():
    offenders = {}
    for path in _sources("app/state"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        bad = {m for m in names if m.startswith(("PySide6.QtWidgets", "pyqtgraph", "vtk"))}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_app_flows_are_built_in_plain_code():
    """No importlib, no setattr patching and no getattr/hasattr lookups of flows in app/."""
    offenders = []
    for path in _sources("app"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders += [f"{path.name}: import {m}" for m in mods if m.split(".")[0] == "importlib"]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("setattr", "hasattr"):
                offenders.append(f"{path.name}:{node.lineno} {node.func.id}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                    and node.args and isinstance(node.args[0], ast.Attribute) and node.args[0].attr == "window":
                offenders.append(f"{path.name}:{node.lineno} getattr on the window")
    assert offenders == []
