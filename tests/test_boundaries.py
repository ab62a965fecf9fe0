"""Import directions between folders (DESIGN.md, "Components and their boundaries")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = {"bus", "market", "brokers", "strategies", "reconcile", "commander"}
# What each product folder may import from this project (DESIGN.md's table). The
# command line is the face of ops/ (deploy, serve, workflow run), so cli may import ops.
ALLOWED = {
    "bus": set(),
    "market": {"bus"},
    "brokers": {"bus"},
    "strategies": {"bus", "market"},
    "reconcile": {"bus", "brokers"},
    "commander": {"bus", "brokers", "market"},
    "pipeline": CORE,
    "backtest": CORE | {"pipeline"},
    "ops": CORE | {"pipeline", "backtest", "functions"},
    "cli": CORE | {"pipeline", "backtest", "ops"},
    "functions": {"pipeline", "bus"},
}
# main.py: the functions-framework targets and the command line, both thin.
MAIN_ALLOWED = {"functions", "cli"}
PACKAGES = set(ALLOWED)
#: Folders with Python files that are not product code.
NOT_PRODUCT = {"tests", "bench"}


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
    bad = project_imports(ROOT / "main.py") - MAIN_ALLOWED
    out += [f"main.py imports {b}" for b in sorted(bad)]
    return out


def test_every_product_folder_has_a_row():
    folders = {d.name for d in ROOT.iterdir()
               if d.is_dir() and not d.name.startswith(".") and any(d.rglob("*.py"))} - NOT_PRODUCT
    assert folders == set(ALLOWED), f"add a row to ALLOWED for {sorted(folders - set(ALLOWED))}"


def test_no_forbidden_imports():
    assert violations() == []


def test_checker_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "s.py"
    bad.write_text("def f():\n    from brokers.sim import SimBroker\n    import commander.run\n")
    assert project_imports(bad) == {"brokers", "commander"}
    assert not {"brokers", "commander"} <= ALLOWED["strategies"]
    assert "strategies" not in ALLOWED["commander"] and "brokers" not in ALLOWED["functions"]
    assert "cli" not in ALLOWED["ops"] and "backtest" not in ALLOWED["pipeline"]
