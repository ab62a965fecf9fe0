"""Shared fixtures: one real Firestore emulator for the session, a fresh project per test."""

from __future__ import annotations

import dataclasses
import os
import uuid

import pytest

from bus.emulator import FirestoreEmulator
from bus.store import FirestoreStore
from market.history import HistoryProvider
from pipeline.settings import load_settings

# The `cloud` fixture of the functions' and workflow tests; the LLM tests' API-key fixture `llm_env`.
pytest_plugins = ("tests.support.functions_fixtures", "tests.support.llm")


@pytest.fixture(scope="session")
def emulator():
    """Google's Firestore emulator, started once; ``FIRESTORE_EMULATOR_HOST`` points at it."""
    with FirestoreEmulator("intent-bus-test") as emu:
        old = os.environ.get("FIRESTORE_EMULATOR_HOST")
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        yield emu
        if old is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = old


@pytest.fixture
def project() -> str:
    """A project id no other test uses: an empty database in the shared emulator."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(emulator, project):
    """A FirestoreStore on the emulator, in a fresh project."""
    return FirestoreStore(project)


@pytest.fixture(scope="session")
def provider():
    """The bundled history."""
    return HistoryProvider()


@pytest.fixture
def settings():
    """The repository's configuration, its paper account filling market orders at once at the as-of close
    (``fill_at: close``): the tests using it are about the pipeline, the order lifecycle, alerts and
    reconcile, not fill timing. The shipped default (``next_open``: an order rests until the next open and
    the next run books its fill) is tested in tests/brokers/test_sim.py and tests/backtest/."""
    s = load_settings()
    return dataclasses.replace(s, account=s.account.model_copy(update={"fill_at": "close"})) \
        if getattr(s.account, "kind", None) == "sim" else s


@pytest.fixture
def srv():
    """The project's fake OpenAI-compatible server on 127.0.0.1 (tests/fakes/fake_openai.py)."""
    from tests.fakes.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def market():
    """The bundled market as of the LLM tests' as-of time (tests/support/llm.py)."""
    from tests.support.llm import AS_OF

    return HistoryProvider().view(AS_OF)
