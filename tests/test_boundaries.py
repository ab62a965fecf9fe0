"""Import directions between folders (DESIGN.md, "Components and their boundaries")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"bus", "market", "brokers", "strategies", "reconcile", "commander", "orchestrator", "functions"}
# What each folder may import from this project. orchestrator also needs market and
# brokers: the local runner builds the history provider and the paper broker.
ALLOWED = {
    "bus": set(),
    "market": {"bus"},
    "brokers": {"bus"},
    "strategies": {"bus", "market"},
    "reconcile": {"bus", "brokers"},
    "commander": {"bus", "brokers", "market"},
    "orchestrator": {"strategies", "reconcile", "commander", "bus", "market", "brokers"},
    "functions": {"orchestrator", "bus"},
}


def project_imports(path: Path) -> set[str]:
    """Top-level project packages imported anywhere in ``path`` (lazy imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & PACKAGES


def violations() -> list[str]:
    out = []
    for pkg, allowed in ALLOWED.items():
        for f in sorted((ROOT / pkg).rglob("*.py")):
            bad = project_imports(f) - allowed - {pkg}
            out += [f"{f.relative_to(ROOT)} imports {b}" for b in sorted(bad)]
    return out


def test_no_forbidden_imports():
    assert violations() == []


def test_checker_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "s.py"
    bad.write_text("def f():\n    from brokers.sim import SimBroker\n    import commander.run\n")
    assert project_imports(bad) == {"brokers", "commander"}
    assert not {"brokers", "commander"} <= ALLOWED["strategies"]
    assert "strategies" not in ALLOWED["commander"] and "brokers" not in ALLOWED["functions"]
