"""Shared by the functions' and the workflow's tests: clients and a dump of the database
(the ``cloud`` fixture is in ``tests/support/functions_fixtures.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import functions_framework

from bus.store import FirestoreStore

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "main.py")


def client(target: str) -> Any:
    """``functions_framework.create_app(target, "main.py").test_client()``."""
    return functions_framework.create_app(target, MAIN).test_client()


def documents(project: str) -> dict[str, dict[str, Any]]:
    """Every document of ``project`` (all collections, all depths): path -> data."""
    fs = FirestoreStore(project).client
    out: dict[str, dict[str, Any]] = {}

    def walk(collections: Any) -> None:
        for col in collections:
            for ref in col.list_documents():
                snap = ref.get()
                if snap.exists:
                    out[ref.path] = snap.to_dict()
                walk(ref.collections())

    walk(fs.collections())
    return out
