"""The ``cloud`` fixture of the functions' and the workflow's tests (loaded with ``pytest_plugins``)."""

from __future__ import annotations

import pytest

from pipeline.settings import apply_settings


@pytest.fixture
def cloud(store, project, settings, monkeypatch):
    """A project whose store holds the configuration, as after ``deploy --apply-config``;
    the functions use it through ``$GOOGLE_CLOUD_PROJECT``."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    monkeypatch.delenv("INTENT_BUS_TOKEN", raising=False)
    monkeypatch.delenv("INTENT_BUS_ORCHESTRATOR", raising=False)
    apply_settings(store, settings)
    return store
