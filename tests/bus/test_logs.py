"""Structured logs: one JSON line per event in Cloud Logging's shape (google-cloud-logging's
StructuredLogHandler), context from contextvars and the trace header, and no secret in any line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bus import logs, redaction
from tests.support.functions import client

TRACE = "105445aa7843bc8bf206b12000100000"
SECRETS = {"INTENT_BUS_TOKEN": "local-tok-9f8e7d6c5b4a", "OPENAI_API_KEY": "sk-test-abcdefghijklmnopqrstuv0123",
           "BINANCE_SECRET": "b1n4nc3-s3cr3t-v4lu3"}


def record(msg, *args, level=logging.INFO, **extra):
    rec = logging.LogRecord("intent.test", level, __file__, 10, msg, args, None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def fmt(rec, project="p-logs"):
    handler = logs.make_handler(project)
    assert handler.filter(rec)
    return json.loads(handler.format(rec))


def test_a_line_has_the_fields_cloud_logging_reads():
    with logs.context(execution_id="20200316T213000Z-abcdef12", strategy_id="spy_macd_vixy",
                      **logs.trace_fields(f"{TRACE}/1234;o=1")):
        entry = fmt(record("placed %d orders", 2, level=logging.WARNING))
    assert entry["severity"] == "WARNING" and entry["message"] == "placed 2 orders"
    assert entry["execution_id"] == "20200316T213000Z-abcdef12" and entry["strategy_id"] == "spy_macd_vixy"
    assert entry["logging.googleapis.com/trace"] == f"projects/p-logs/traces/{TRACE}"
    assert entry["logging.googleapis.com/spanId"] == f"{1234:016x}"
    assert entry["logging.googleapis.com/trace_sampled"] is True
    assert entry["logging.googleapis.com/sourceLocation"]["line"] == 10
    assert entry["time"].endswith("Z") and entry["logging.googleapis.com/labels"] == {"python_logger": "intent.test"}
    outside = fmt(record("later"))
    assert "execution_id" not in outside and not outside["logging.googleapis.com/trace"]


def test_extra_fields_win_and_data_is_kept():
    with logs.context(strategy_id="a"):
        entry = fmt(record("x", strategy_id="b", data={"orders": 2}))
    assert entry["strategy_id"] == "b" and entry["data"] == {"orders": 2}


@pytest.mark.parametrize("cloud_header, traceparent, expected", [
    (f"{TRACE}/1;o=0", None, {"trace": TRACE, "span_id": "0000000000000001", "trace_sampled": False}),
    (TRACE, None, {"trace": TRACE}),
    (None, f"00-{TRACE}-00f067aa0ba902b7-01", {"trace": TRACE, "span_id": "00f067aa0ba902b7", "trace_sampled": True}),
    ("not-a-trace", None, {}),
    (None, None, {}),
])
def test_trace_headers(cloud_header, traceparent, expected):
    assert logs.trace_fields(cloud_header, traceparent) == expected


def test_context_is_per_thread_and_restored():
    seen = {}

    def other():
        seen["other"] = logs.current()

    with logs.context(execution_id="e-1"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        with logs.context(execution_id="e-2", strategy_id=None):
            seen["inner"] = logs.current()
        seen["outer"] = logs.current()
    assert seen == {"other": {}, "inner": {"execution_id": "e-2"}, "outer": {"execution_id": "e-1"}}
    assert logs.current() == {}


@pytest.mark.parametrize("text, leaked", [
    ("Authorization: Bearer ya29.a0AfH6SMBx-token", "a0AfH6SMBx"),
    ("calling https://api.example.com?api_key=abc123def456 now", "abc123def456"),
    ("{'password': 'hunter2hunter2'}", "hunter2hunter2"),
    ('config {"client_secret": "cs-998877"}', "cs-998877"),
    ("key sk-proj-ABCDEFGHIJKLMNOPQRSTUV used", "ABCDEFGHIJKLMNOPQRSTUV"),
    ("id token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", "eyJzdWIiOiIxMjM0In0"),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890"),
    ("-----BEGIN " + "PRIVATE KEY-----\nMIIEv\n-----END " + "PRIVATE KEY-----", "MIIEv"),  # a made-up, 5-char body
])
def test_redaction_of_known_secret_shapes(text, leaked):
    out = redaction.redact(text)
    assert leaked not in out and redaction.MASK in out


def test_redaction_keeps_what_is_not_secret(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    text = "max_tokens=512 prompt_tokens: 40 author: system tokens_used=3 execution 20200316T213000Z-abcdef12"
    assert redaction.redact(text) == text
    entry = fmt(record("env %s and %s", SECRETS["OPENAI_API_KEY"], SECRETS["BINANCE_SECRET"],
                       data={"token": "t-1234567", "max_tokens": 5, "nested": [{"api_key": "k"}]}))
    assert entry["message"] == f"env {redaction.MASK} and {redaction.MASK}"
    assert entry["data"] == {"token": redaction.MASK, "max_tokens": 5, "nested": [{"api_key": redaction.MASK}]}


def test_no_secret_reaches_any_line_of_a_request(cloud, project, monkeypatch, capsys):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    auth = {"Authorization": f"Bearer {SECRETS['INTENT_BUS_TOKEN']}", "X-Cloud-Trace-Context": f"{TRACE}/7;o=1"}
    capsys.readouterr()
    ok = client("orchestrator").post("/", json={"dryRun": True, "asOf": "2020-03-16"}, headers=auth)
    assert ok.status_code == 200
    denied = client("orchestrator").post("/", json={}, headers={"Authorization": "Bearer guess-1234567"})
    assert denied.status_code == 401
    logging.getLogger("some.library").warning("retrying with headers {'Authorization': 'Bearer %s'} key=%s",
                                              SECRETS["INTENT_BUS_TOKEN"], SECRETS["OPENAI_API_KEY"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(entries) >= 5 and all(e["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR") and e["message"]
                                     for e in entries)
    for line in lines:
        for secret in [*SECRETS.values(), "guess-1234567"]:
            assert secret not in line
    traced = [e for e in entries if e.get("logging.googleapis.com/trace") == f"projects/{project}/traces/{TRACE}"]
    assert any(e.get("execution_id") == ok.get_json()["execution_id"] for e in traced)
    assert {e["function"] for e in traced} == {"orchestrator"}
    assert any("retrying with headers" in e["message"] for e in entries)


def test_one_redaction_one_mask():
    hook = "https://hooks.example.com/services/T000/B000/xyzzy-0123"
    assert redaction.MASK == "***"
    assert redaction.redact(f"posting to {hook}") == f"posting to {hook}"
    redaction.register(hook)  # a registered value is a secret wherever it shows up, in any log line too
    assert redaction.redact(f"posting to {hook}") == "posting to ***"
    assert redaction.redact("GET /x?timestamp=1&signature=abc123") == "GET /x?timestamp=1&signature=***"
    assert redaction.redact("api_key=*** and Bearer ***") == "api_key=*** and Bearer ***"  # idempotent
    rec = logging.getLogger("intent.test").makeRecord("intent.test", logging.INFO, __file__, 1, "to %s", (hook,), None)
    assert rec.getMessage() == "to ***"


def test_tracebacks_and_odd_values_are_redacted(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)

    class Opaque:
        def __repr__(self):
            return f"Opaque({SECRETS['BINANCE_SECRET']})"

    try:
        raise RuntimeError(f"venue said no to {SECRETS['BINANCE_SECRET']}")
    except RuntimeError:
        rec = record("failed", data={"obj": Opaque(), "when": 1.5})
        rec.exc_info = sys.exc_info()
    entry = fmt(rec)
    line = json.dumps(entry)
    assert SECRETS["BINANCE_SECRET"] not in line
    assert "RuntimeError: venue said no to ***" in entry["message"] and entry["data"] == {"obj": "Opaque(***)",
                                                                                           "when": 1.5}


def test_importing_the_logs_module_does_not_import_the_library():
    code = ("import sys, functions.http; "
            "assert not [m for m in sys.modules if m.startswith('google.cloud.logging')], 'imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
