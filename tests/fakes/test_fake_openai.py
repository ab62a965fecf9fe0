"""Drive tests/fakes/fake_openai.py with the real ``openai`` client over loopback.

No real API is contacted: every client is pointed at the fake's 127.0.0.1 URL.
"""

from __future__ import annotations

import json
import threading
import time

import openai  # a missing package fails the suite, never skips it
import pytest

from tests.fakes.fake_openai import Behaviour, FakeOpenAIServer

API_KEY = "sk-test-not-a-real-key"

INTENT_SCHEMA = {
    "name": "trade_intent",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
            "symbol": {"type": "string"},
            "quantity": {"type": "integer"},
        },
        "required": ["action", "symbol", "quantity"],
        "additionalProperties": False,
    },
}
MESSAGES = [
    {"role": "system", "content": "Answer with a trade intent."},
    {"role": "user", "content": "AAPL broke out on volume."},
]


@pytest.fixture
def srv():
    with FakeOpenAIServer() as server:
        yield server


def make_client(server: FakeOpenAIServer, *, max_retries: int = 0, timeout: float = 5.0, **kw):
    return openai.OpenAI(
        base_url=server.base_url, api_key=API_KEY, max_retries=max_retries, timeout=timeout, **kw
    )


def test_good_answer_with_json_schema(srv):
    intent = {"action": "BUY", "symbol": "AAPL", "quantity": 10}
    srv.script("model-a", [Behaviour.ok(intent, prompt_tokens=1200, completion_tokens=300)])
    client = make_client(srv)

    resp = client.chat.completions.create(
        model="model-a",
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": INTENT_SCHEMA},
    )

    assert resp.object == "chat.completion"
    assert resp.model == "model-a"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert json.loads(resp.choices[0].message.content) == intent
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (1200, 300, 1500)

    [req] = srv.chat_requests()
    assert req.model == "model-a"
    assert req.messages == MESSAGES
    assert req.response_format == {"type": "json_schema", "json_schema": INTENT_SCHEMA}
    assert req.has_bearer is True
    assert req.status == 200
    # The bearer token itself is never recorded.
    assert all(name.lower() != "authorization" for name in req.headers)
    assert API_KEY not in repr(srv.requests)
    assert srv.calls("model-a") == 1
    assert srv.pending("model-a") == 0


def test_default_behaviour_and_models_listing(srv):
    srv.set_default("model-b", Behaviour.ok("plain text"))
    srv.script("model-a", [Behaviour.ok("first")])
    client = make_client(srv)

    assert sorted(m.id for m in client.models.list()) == ["model-a", "model-b"]
    for _ in range(3):
        resp = client.chat.completions.create(model="model-b", messages=MESSAGES)
        assert resp.choices[0].message.content == "plain text"
        assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0
    assert srv.call_counts == {"model-b": 3}


def test_malformed_json_content(srv):
    srv.script("model-a", [Behaviour.malformed()])
    client = make_client(srv)

    resp = client.chat.completions.create(
        model="model-a", messages=MESSAGES, response_format={"type": "json_object"}
    )

    content = resp.choices[0].message.content
    assert content.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_sleep_longer_than_client_timeout_raises_timeout(srv):
    srv.script("model-a", [Behaviour.sleep(5.0, then=Behaviour.ok("too late"))])
    client = make_client(srv, timeout=0.3, max_retries=0)

    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="model-a", messages=MESSAGES)
    assert time.monotonic() - started < 3.0
    assert srv.calls("model-a") == 1


def test_stop_is_quick_while_a_request_sleeps():
    threads_before = set(threading.enumerate())
    server = FakeOpenAIServer().start()
    server.script("model-a", [Behaviour.sleep(30.0)])
    client = make_client(server, timeout=30.0, max_retries=0)
    errors: list[Exception] = []

    def call() -> None:
        try:
            client.chat.completions.create(model="model-a", messages=MESSAGES)
        except openai.APIConnectionError as exc:  # the connection is cut: no answer
            errors.append(exc)

    caller = threading.Thread(target=call, name="test-caller")
    caller.start()
    assert server.wait_for_delayed(1, timeout=10)  # the handler thread is now in its 30 s sleep
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    caller.join(timeout=10)
    assert not caller.is_alive() and len(errors) == 1
    client.close()
    # The serving thread and the handler thread that was sleeping are gone: stop() joined them. (Compared by
    # identity: threads of earlier tests may end meanwhile, which a count would mistake.)
    assert [t.name for t in set(threading.enumerate()) - threads_before] == []
    with pytest.raises(RuntimeError):
        _ = server.base_url


def test_exhausted_script_is_a_clear_error(srv):
    srv.script("model-a", [Behaviour.ok("only one")])
    client = make_client(srv, max_retries=0)
    client.chat.completions.create(model="model-a", messages=MESSAGES)

    with pytest.raises(openai.InternalServerError) as excinfo:
        client.chat.completions.create(model="model-a", messages=MESSAGES)

    assert excinfo.value.code == "fake_script_exhausted"
    assert srv.calls("model-a") == 2


def test_rate_limit_without_retries(srv):
    srv.script("model-a", [Behaviour.rate_limited(retry_after=0.01)])
    client = make_client(srv, max_retries=0)

    with pytest.raises(openai.RateLimitError) as excinfo:
        client.chat.completions.create(model="model-a", messages=MESSAGES)

    assert excinfo.value.status_code == 429
    assert excinfo.value.code == "rate_limit_exceeded"
    assert excinfo.value.response.headers["retry-after"] == "1"
    assert excinfo.value.response.headers["retry-after-ms"] == "10"
    assert srv.calls("model-a") == 1


def test_rate_limit_then_ok_recovers_with_one_retry(srv):
    srv.script("model-a", [Behaviour.rate_limited(retry_after=0.01), Behaviour.ok({"action": "HOLD"})])
    client = make_client(srv, max_retries=1)

    resp = client.chat.completions.create(model="model-a", messages=MESSAGES)

    assert json.loads(resp.choices[0].message.content) == {"action": "HOLD"}
    assert srv.calls("model-a") == 2
    assert [r.status for r in srv.chat_requests("model-a")] == [429, 200]


def test_server_error(srv):
    srv.script("model-a", [Behaviour.server_error()])
    client = make_client(srv, max_retries=0)

    with pytest.raises(openai.InternalServerError) as excinfo:
        client.chat.completions.create(model="model-a", messages=MESSAGES)

    assert excinfo.value.status_code == 500
    assert excinfo.value.type == "server_error"
    assert srv.calls("model-a") == 1


def test_json_schema_unsupported_then_json_object_fallback():
    with FakeOpenAIServer(supports_json_schema=False) as server:
        server.script("model-a", [Behaviour.ok({"action": "SELL", "symbol": "MSFT", "quantity": 3})])
        client = make_client(server, max_retries=0)

        with pytest.raises(openai.BadRequestError) as excinfo:
            client.chat.completions.create(
                model="model-a",
                messages=MESSAGES,
                response_format={"type": "json_schema", "json_schema": INTENT_SCHEMA},
            )
        assert excinfo.value.status_code == 400
        assert excinfo.value.param == "response_format"
        assert "json_schema" in excinfo.value.message
        # The rejected request did not use up the scripted answer.
        assert server.pending("model-a") == 1

        resp = client.chat.completions.create(
            model="model-a", messages=MESSAGES, response_format={"type": "json_object"}
        )
        assert json.loads(resp.choices[0].message.content)["action"] == "SELL"
        assert [r.response_format["type"] for r in server.chat_requests()] == ["json_schema", "json_object"]
        assert server.calls("model-a") == 2


def test_missing_auth_is_401(srv):
    srv.set_default("model-a", Behaviour.ok("hi"))
    client = make_client(srv, max_retries=0)

    with pytest.raises(openai.AuthenticationError) as excinfo:
        client.chat.completions.create(
            model="model-a", messages=MESSAGES, extra_headers={"Authorization": openai.Omit()}
        )

    assert excinfo.value.status_code == 401
    [req] = srv.requests
    assert req.has_bearer is False
    assert req.status == 401


def test_auth_not_required_when_disabled():
    with FakeOpenAIServer(require_auth=False) as server:
        server.set_default("model-a", Behaviour.ok("hi"))
        client = make_client(server, max_retries=0)
        resp = client.chat.completions.create(
            model="model-a", messages=MESSAGES, extra_headers={"Authorization": openai.Omit()}
        )
        assert resp.choices[0].message.content == "hi"
        assert server.requests[0].has_bearer is False


def test_unknown_model_is_404(srv):
    srv.set_default("model-a", Behaviour.ok("hi"))
    client = make_client(srv, max_retries=0)

    with pytest.raises(openai.NotFoundError) as excinfo:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)

    assert excinfo.value.status_code == 404
    assert excinfo.value.code == "model_not_found"
    assert "no-such-model" in excinfo.value.message
    assert srv.calls("no-such-model") == 1
    assert srv.calls("model-a") == 0


def test_refusal_has_null_content_and_the_refusal_text(srv):
    srv.script("model-a", [Behaviour.refused("I can't give trading advice.", prompt_tokens=40, completion_tokens=7)])
    resp = make_client(srv).chat.completions.create(model="model-a", messages=MESSAGES)
    msg = resp.choices[0].message
    assert (msg.content, msg.refusal, resp.choices[0].finish_reason) == (None, "I can't give trading advice.", "stop")
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (40, 7)


def test_an_answer_without_usage(srv):
    srv.script("model-a", [Behaviour.ok({"x": 1}).without_usage()])
    resp = make_client(srv).chat.completions.create(model="model-a", messages=MESSAGES)
    assert resp.usage is None and json.loads(resp.choices[0].message.content) == {"x": 1}


def test_truncated_answer_is_cut_at_the_requests_max_tokens(srv):
    text = json.dumps({"reasoning": "y" * 400})  # about 103 tokens at 4 characters a token
    srv.set_default("model-a", Behaviour.truncated(text, prompt_tokens=10))
    client = make_client(srv)
    cut = client.chat.completions.create(model="model-a", messages=MESSAGES, max_tokens=50)
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == text[:200] and cut.usage.completion_tokens == 50
    whole = client.chat.completions.create(model="model-a", messages=MESSAGES, max_tokens=200)
    assert whole.choices[0].finish_reason == "stop" and whole.choices[0].message.content == text
    assert [r.max_tokens for r in srv.chat_requests()] == [50, 200]


def test_tool_call_instead_of_content(srv):
    srv.script("model-a", [Behaviour.tool_call("trading_decisions", {"decisions": []})])
    resp = make_client(srv).chat.completions.create(model="model-a", messages=MESSAGES)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.type, call.function.name, json.loads(call.function.arguments)) == \
        ("function", "trading_decisions", {"decisions": []})
