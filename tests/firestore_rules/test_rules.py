"""Tests for firestore_rules/firestore.rules against Google's Firestore emulator.

The emulator is started once per module in its own process group and spoken to
over its REST API. ``Authorization: Bearer owner`` is the emulator's admin
credential (bypasses rules, used for seeding and for checking that documents
are unchanged); an unsigned JWT (alg "none") is accepted by the emulator as a
signed-in Firebase user carrying the claims in its payload.

The emulator comes from ``bus.emulator`` (override its launcher with FIRESTORE_EMULATOR_BIN).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest
import requests

from bus.emulator import FirestoreEmulator

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_PATH = REPO_ROOT / "firestore_rules" / "firestore.rules"

HTTP_TIMEOUT_S = 10.0
OWNER = {"Authorization": "Bearer owner"}


@pytest.fixture(scope="module")
def emulator():
    """Start the Firestore emulator with our rules (bus.emulator); yield its base URL."""
    assert RULES_PATH.is_file(), f"missing rules file {RULES_PATH}"
    with FirestoreEmulator("rules-test", rules=RULES_PATH) as emu:
        yield emu.url


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def _b64url(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_token(project: str, uid: str = "user-1", **claims) -> str:
    """Unsigned (alg=none) Firebase ID token the emulator accepts as signed-in."""
    now = int(time.time())
    payload = {
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "exp": now + 3600,
        "aud": project,
        "iss": f"https://securetoken.google.com/{project}",
        "firebase": {"sign_in_provider": "custom"},
    }
    payload.update(claims)
    return _b64url({"alg": "none", "typ": "JWT"}) + "." + _b64url(payload) + "."


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Client:
    """Tiny REST client for one project in the emulator."""

    def __init__(self, base: str, project: str):
        self.project = project
        self.root = f"{base}/v1/projects/{project}/databases/(default)/documents"

    def url(self, path: str) -> str:
        return f"{self.root}/{path}"

    def get(self, path: str, headers: dict | None = None) -> requests.Response:
        return requests.get(self.url(path), headers=headers or {}, timeout=HTTP_TIMEOUT_S)

    def create(self, collection: str, doc_id: str, fields: dict,
               headers: dict | None = None) -> requests.Response:
        return requests.post(
            self.url(collection), params={"documentId": doc_id},
            json={"fields": encode(fields)}, headers=headers or {}, timeout=HTTP_TIMEOUT_S,
        )

    def patch(self, path: str, fields: dict, headers: dict | None = None) -> requests.Response:
        return requests.patch(
            self.url(path), json={"fields": encode(fields)},
            headers=headers or {}, timeout=HTTP_TIMEOUT_S,
        )

    def delete(self, path: str, headers: dict | None = None) -> requests.Response:
        return requests.delete(self.url(path), headers=headers or {}, timeout=HTTP_TIMEOUT_S)

    def seed(self, path: str, fields: dict) -> None:
        r = self.patch(path, fields, headers=OWNER)
        assert r.status_code == 200, r.text


def encode(fields: dict) -> dict:
    out = {}
    for k, v in fields.items():
        if isinstance(v, bool):
            out[k] = {"booleanValue": v}
        elif isinstance(v, int):
            out[k] = {"integerValue": str(v)}
        elif isinstance(v, float):
            out[k] = {"doubleValue": v}
        else:
            out[k] = {"stringValue": str(v)}
    return out


def decode(doc: dict) -> dict:
    out = {}
    for k, v in doc.get("fields", {}).items():
        ((kind, val),) = v.items()
        out[k] = int(val) if kind == "integerValue" else val
    return out


# Documents seeded (with owner credentials) in every test's project.
SEED = {
    "executions/x": {"kind": "execution", "qty": 3},
    "strategies/s1": {"kind": "strategy", "name": "s1"},
    "strategies/s1/intent/latest": {"kind": "intent", "side": "buy"},
    "strategies/s1/book/latest": {"kind": "book", "cash": 1000},
    "strategies/s1/equity/latest": {"kind": "equity"},
    "strategies/s1/trades/t1": {"kind": "trade"},
    "strategies/s1/journal/j1": {"kind": "journal"},
    "strategies/s1/secret/x": {"kind": "unlisted-subcollection"},
    "positions/paper": {"kind": "positions", "mode": "paper"},
    "positions/paper/portfolio/latest": {"kind": "portfolio", "value": 42},
    "config/trading": {"kind": "config", "enabled": True},
    "locks/commander-paper": {"kind": "lock", "holder": "commander"},
    "sim_accounts/a1": {"kind": "sim_account"},
    "other/doc": {"kind": "other"},
}


@pytest.fixture
def project() -> str:
    return f"rules-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fs(emulator, project) -> Client:
    client = Client(emulator, project)
    for path, fields in SEED.items():
        client.seed(path, fields)
    return client


@pytest.fixture
def auditor(project) -> dict:
    return bearer(make_token(project, uid="auditor-1", auditor=True))


# --------------------------------------------------------------------------- #
# Reads
# --------------------------------------------------------------------------- #


def test_anonymous_read_denied(fs):
    r = fs.get("executions/x")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    "claims",
    [{}, {"auditor": False}, {"auditor": "true"}, {"auditor": 1}, {"admin": True}],
    ids=["no-claim", "auditor-false", "auditor-string", "auditor-int", "other-claim"],
)
def test_signed_in_non_auditor_read_denied(fs, project, claims):
    headers = bearer(make_token(project, **claims))
    for path in ("executions/x", "strategies/s1", "positions/paper", "config/trading"):
        r = fs.get(path, headers)
        assert r.status_code == 403, (path, r.text)


def test_garbage_token_is_not_accepted(fs):
    r = fs.get("executions/x", {"Authorization": "Bearer not-a-jwt"})
    assert r.status_code in (400, 401, 403), r.text


ALLOWED_READS = [
    "executions/x",
    "strategies/s1",
    "strategies/s1/intent/latest",
    "strategies/s1/book/latest",
    "strategies/s1/equity/latest",
    "strategies/s1/trades/t1",
    "strategies/s1/journal/j1",
    "positions/paper",
    "positions/paper/portfolio/latest",
]


@pytest.mark.parametrize("path", ALLOWED_READS)
def test_auditor_read_allowed(fs, auditor, path):
    r = fs.get(path, auditor)
    assert r.status_code == 200, (path, r.text)
    doc = r.json()
    assert doc["name"].endswith("/documents/" + path)
    assert decode(doc) == SEED[path]


def test_auditor_read_of_executions_returns_seeded_fields(fs, auditor):
    r = fs.get("executions/x", auditor)
    assert r.status_code == 200, r.text
    assert decode(r.json()) == {"kind": "execution", "qty": 3}


def test_auditor_read_of_missing_allowed_doc_is_404(fs, auditor):
    # Rules allow the read; the document simply does not exist.
    r = fs.get("executions/does-not-exist", auditor)
    assert r.status_code == 404, r.text


@pytest.mark.parametrize(
    "path",
    [
        "config/trading",
        "locks/commander-paper",
        "sim_accounts/a1",
        "other/doc",
        "strategies/s1/secret/x",  # subcollection not in the allow-list
        "config/does-not-exist",   # denied before existence is revealed
    ],
)
def test_auditor_read_denied(fs, auditor, path):
    r = fs.get(path, auditor)
    assert r.status_code == 403, (path, r.text)


# --------------------------------------------------------------------------- #
# Writes
# --------------------------------------------------------------------------- #

WRITE_TARGETS = [
    ("executions", "x"),
    ("strategies/s1/intent", "latest"),
    ("config", "trading"),
]


def _owner_view(fs: Client, path: str) -> dict:
    r = fs.get(path, OWNER)
    assert r.status_code == 200, (path, r.text)
    return r.json()


@pytest.mark.parametrize("collection,doc_id", WRITE_TARGETS)
def test_client_writes_denied_and_documents_unchanged(fs, auditor, collection, doc_id):
    path = f"{collection}/{doc_id}"
    before = _owner_view(fs, path)

    # Anonymous create (new doc and over the existing id).
    r = fs.create(collection, "new-anon", {"evil": True})
    assert r.status_code == 403, r.text
    r = fs.patch(path, {"evil": True})
    assert r.status_code == 403, r.text
    r = fs.delete(path)
    assert r.status_code == 403, r.text

    # Auditor create / patch / delete.
    r = fs.create(collection, "new-auditor", {"evil": True}, headers=auditor)
    assert r.status_code == 403, r.text
    r = fs.patch(f"{collection}/another-new", {"evil": True}, headers=auditor)
    assert r.status_code == 403, r.text
    r = fs.patch(path, {"evil": True}, headers=auditor)
    assert r.status_code == 403, r.text
    r = fs.delete(path, headers=auditor)
    assert r.status_code == 403, r.text

    # Documents unchanged; nothing new created (checked with admin credentials).
    after = _owner_view(fs, path)
    assert after == before
    assert decode(after) == SEED[path]
    for new_id in ("new-anon", "new-auditor", "another-new"):
        r = fs.get(f"{collection}/{new_id}", OWNER)
        assert r.status_code == 404, (new_id, r.text)


def test_non_auditor_signed_in_write_denied(fs, project):
    headers = bearer(make_token(project))
    r = fs.patch("executions/x", {"evil": True}, headers=headers)
    assert r.status_code == 403, r.text
    assert decode(_owner_view(fs, "executions/x")) == SEED["executions/x"]


# --------------------------------------------------------------------------- #
# List queries
# --------------------------------------------------------------------------- #


def test_auditor_list_executions_allowed(fs, auditor):
    fs.seed("executions/y", {"kind": "execution", "qty": 5})
    r = requests.get(fs.url("executions"), headers=auditor, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 200, r.text
    docs = {d["name"].rsplit("/", 1)[-1]: decode(d) for d in r.json()["documents"]}
    assert docs == {"x": SEED["executions/x"], "y": {"kind": "execution", "qty": 5}}


def test_auditor_run_query_on_executions_allowed(fs, auditor):
    r = requests.post(
        fs.root + ":runQuery",
        json={"structuredQuery": {"from": [{"collectionId": "executions"}]}},
        headers=auditor, timeout=HTTP_TIMEOUT_S,
    )
    assert r.status_code == 200, r.text
    names = [row["document"]["name"] for row in r.json() if "document" in row]
    assert [n.rsplit("/", 1)[-1] for n in names] == ["x"]


def test_auditor_list_config_denied(fs, auditor):
    r = requests.get(fs.url("config"), headers=auditor, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 403, r.text


def test_anonymous_list_executions_denied(fs):
    r = requests.get(fs.url("executions"), timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 403, r.text
