"""A small fake OpenAI-compatible chat-completions server for tests.

Standard library only.  The server listens on ``127.0.0.1`` on a free port and
answers the subset of the OpenAI HTTP API that the pipeline's LLM clients use,
in the same JSON shapes as the real service, so the real ``openai`` Python
client can talk to it over a loopback socket::

    from tests.fakes.fake_openai import Behaviour, FakeOpenAIServer

    with FakeOpenAIServer() as srv:
        srv.script("model-a", [
            Behaviour.malformed(),
            Behaviour.ok({"intent": "buy"}, prompt_tokens=1200, completion_tokens=300),
        ])
        srv.set_default("model-b", Behaviour.ok("hello"))
        client = openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0)
        ...
        assert srv.calls("model-a") == 2

Endpoints
---------
``POST /v1/chat/completions``
    Answers with the next scripted :class:`Behaviour` for the requested model
    (see :meth:`FakeOpenAIServer.script` and :meth:`FakeOpenAIServer.set_default`).
    A successful answer is a ``chat.completion`` object::

        {"id": "chatcmpl-fake-1", "object": "chat.completion", "created": 1700000000,
         "model": "model-a", "system_fingerprint": "fp_fake",
         "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                      "message": {"role": "assistant", "content": "...", "refusal": null}}],
         "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}

``GET /v1/models``
    A ``list`` object with one ``model`` entry per model name that has been
    scripted or given a default.

Errors
------
Every error is answered with an OpenAI-style body
``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``:

* 401 ``invalid_api_key`` when ``require_auth`` is on and the request carries no
  ``Authorization: Bearer <token>`` header;
* 400 ``invalid_request_error`` for a body that is not JSON, has no ``model`` or
  ``messages``, asks for streaming, or has an unknown ``response_format``; and for
  ``response_format`` of type ``json_schema`` when ``supports_json_schema`` is
  False (``param: "response_format"``), so a client can fall back to
  ``json_object``.  Such rejected requests do not consume a scripted behaviour;
* 404 ``model_not_found`` for a model that was never scripted nor given a default;
* 500 ``fake_script_exhausted`` for a model whose script is used up and which has
  no default: a test made more calls than it scripted;
* whatever a scripted error behaviour says (429 with ``Retry-After``, 500, ...);
* 404 ``unknown_url`` for any other path.

Recording
---------
Every request received (any path) is kept, in order, as a
:class:`RecordedRequest` in :attr:`FakeOpenAIServer.requests`.  The value of the
``Authorization`` header is never stored: only whether a bearer token was present.
:meth:`FakeOpenAIServer.calls` counts chat-completions requests per model name,
whatever they were answered.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Deque, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

__all__ = ["Behaviour", "FakeOpenAIServer", "RecordedRequest"]

JsonContent = Union[str, Mapping[str, Any], List[Any]]

# Headers whose values are credentials; they are never recorded.
_SECRET_HEADERS = frozenset({"authorization", "api-key", "openai-api-key"})

_DEFAULT_MALFORMED = '{"intent": "BUY", "symbol": "AAPL", "quantity": 10, "reason": "momentum br'


def _estimate_tokens(text: str) -> int:
    """Crude token estimate (about four characters a token, at least one)."""
    return max(1, len(text) // 4)


@dataclass(frozen=True)
class Behaviour:
    """One scripted answer of the fake server to one chat-completions request.

    Build instances with the class methods rather than the constructor:

    * :meth:`ok` – a well-formed ``chat.completion`` with the given content;
    * :meth:`malformed` – a well-formed ``chat.completion`` whose *content* is
      broken JSON (the HTTP response itself is valid);
    * :meth:`sleep` – wait, then answer as another behaviour (provokes timeouts);
    * :meth:`rate_limited` – HTTP 429 with ``Retry-After`` / ``retry-after-ms``;
    * :meth:`server_error` – HTTP 500 (or another 5xx);
    * :meth:`error` – any HTTP status with an OpenAI-style error body;
    * :meth:`refused` – ``message.refusal`` set, ``content`` null;
    * :meth:`truncated` – content cut at the request's ``max_tokens``, ``finish_reason: "length"``;
    * :meth:`tool_call` – a function tool call instead of content.

    :meth:`without_usage` drops the ``usage`` object from any answer.

    Any behaviour can be delayed with :meth:`delayed`.  ``prompt_tokens`` and
    ``completion_tokens`` left as ``None`` are estimated from the request's
    messages and the answer's content.
    """

    kind: str
    content: Optional[str] = None
    delay: float = 0.0
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    finish_reason: str = "stop"
    status: int = 200
    error_message: str = ""
    error_type: str = ""
    error_code: Optional[str] = None
    retry_after: Optional[float] = None
    headers: Tuple[Tuple[str, str], ...] = ()
    refusal: Optional[str] = None
    omit_usage: bool = False
    tool_calls: Tuple[Tuple[str, str], ...] = ()

    @classmethod
    def ok(
        cls,
        content: JsonContent,
        *,
        prompt_tokens: Optional[int] = None,
        completion_tokens: Optional[int] = None,
        finish_reason: str = "stop",
        delay: float = 0.0,
    ) -> "Behaviour":
        """Answer 200 with ``content`` as the assistant message.

        A ``str`` is sent as is; a dict or list is JSON-encoded first.
        """
        text = content if isinstance(content, str) else json.dumps(content)
        return cls(
            kind="ok",
            content=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish_reason,
            delay=delay,
        )

    @classmethod
    def malformed(
        cls,
        text: Optional[str] = None,
        *,
        prompt_tokens: Optional[int] = None,
        completion_tokens: Optional[int] = None,
        finish_reason: str = "stop",
        delay: float = 0.0,
    ) -> "Behaviour":
        """Answer 200 whose assistant content is not valid JSON.

        ``text`` defaults to a truncated JSON object, as a model cut off
        mid-answer would produce.  Use ``finish_reason="length"`` to mimic a
        ``max_tokens`` cut.
        """
        body = _DEFAULT_MALFORMED if text is None else text
        return dataclasses.replace(
            cls.ok(
                body,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=finish_reason,
                delay=delay,
            ),
            kind="malformed",
        )

    @classmethod
    def sleep(cls, seconds: float, then: Optional["Behaviour"] = None) -> "Behaviour":
        """Wait ``seconds`` before answering as ``then`` (default: ``ok("{}")``).

        The wait is cut short when the server stops, so a client that timed out
        never keeps the test waiting.
        """
        base = then if then is not None else cls.ok("{}")
        return base.delayed(seconds)

    @classmethod
    def rate_limited(
        cls,
        retry_after: float = 1.0,
        message: str = "Rate limit reached for requests. Please try again later.",
        *,
        delay: float = 0.0,
    ) -> "Behaviour":
        """Answer HTTP 429 (``rate_limit_exceeded``) with ``Retry-After``.

        Sends ``Retry-After`` in whole seconds (rounded up, at least 1) and
        ``retry-after-ms`` in milliseconds; the ``openai`` client prefers the
        latter, so a small ``retry_after`` keeps retrying tests fast.
        """
        return cls(
            kind="error",
            status=429,
            error_message=message,
            error_type="requests",
            error_code="rate_limit_exceeded",
            retry_after=retry_after,
            delay=delay,
        )

    @classmethod
    def server_error(
        cls,
        status: int = 500,
        message: str = "The server had an error while processing your request. Sorry about that!",
        *,
        delay: float = 0.0,
    ) -> "Behaviour":
        """Answer HTTP ``status`` (default 500) with a ``server_error`` body."""
        return cls.error(status, message, error_type="server_error", delay=delay)

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        delay: float = 0.0,
    ) -> "Behaviour":
        """Answer HTTP ``status`` with ``{"error": {message, type, param, code}}``.

        ``headers`` are added to the response as given (e.g. ``x-should-retry``).
        """
        return cls(
            kind="error",
            status=status,
            error_message=message,
            error_type=error_type,
            error_code=code,
            headers=tuple((headers or {}).items()),
            delay=delay,
        )

    @classmethod
    def refused(cls, text: str = "I'm sorry, I can't help with that.", *, prompt_tokens: Optional[int] = None,
                completion_tokens: Optional[int] = None) -> "Behaviour":
        """Answer 200 with a refusal: ``message.content`` null, ``message.refusal`` = ``text``,
        ``finish_reason`` ``stop`` (as OpenAI's structured-output refusals)."""
        return cls(kind="refusal", refusal=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    @classmethod
    def truncated(cls, content: JsonContent, *, prompt_tokens: Optional[int] = None) -> "Behaviour":
        """Answer ``content`` cut to the request's ``max_tokens`` (or ``max_completion_tokens``).

        When ``content`` is longer than ``max_tokens`` x 4 characters (the server's
        token estimate), the answer is its first ``max_tokens`` x 4 characters with
        ``completion_tokens`` = ``max_tokens`` and ``finish_reason: "length"``; when
        it fits, it is answered whole with ``stop``. A request without a limit gets
        it whole.
        """
        text = content if isinstance(content, str) else json.dumps(content)
        return cls(kind="truncated", content=text, prompt_tokens=prompt_tokens)

    @classmethod
    def tool_call(cls, name: str, arguments: JsonContent, *, prompt_tokens: Optional[int] = None,
                  completion_tokens: Optional[int] = None) -> "Behaviour":
        """Answer 200 with one function tool call (``content`` null, ``finish_reason: "tool_calls"``);
        ``arguments`` is sent as a JSON string, as the API does."""
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        return cls(kind="ok", content=None, tool_calls=((name, args),), finish_reason="tool_calls",
                   prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def without_usage(self) -> "Behaviour":
        """The same answer with no ``usage`` object (as some OpenAI-compatible servers send)."""
        return dataclasses.replace(self, omit_usage=True)

    def delayed(self, seconds: float) -> "Behaviour":
        """The same behaviour, answered after waiting ``seconds``."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        return dataclasses.replace(self, delay=float(seconds))


@dataclass
class RecordedRequest:
    """One HTTP request the fake server received.

    ``headers`` holds every header except credentials (``Authorization`` and
    API-key headers are dropped); ``has_bearer`` tells whether an
    ``Authorization: Bearer <non-empty token>`` header was present.  ``body`` is
    the parsed JSON body (``None`` if absent or not JSON); ``model``,
    ``messages`` and ``response_format`` are taken from it.  ``status`` is the
    HTTP status the server answered (``None`` while in progress or if the client
    went away first).
    """

    method: str
    path: str
    headers: Dict[str, str]
    has_bearer: bool
    body: Any = None
    model: Optional[str] = None
    messages: Optional[List[Any]] = None
    response_format: Optional[Dict[str, Any]] = None
    max_tokens: Optional[int] = None
    status: Optional[int] = None
    received_at: float = field(default_factory=time.time)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections and handler threads, so stop() can cut and join them.

    ``socketserver.ThreadingMixIn`` joins only *non-daemon* handler threads in
    ``server_close()``; ours are daemons (a stuck handler must never keep the
    interpreter alive), so they are tracked here and joined by
    :meth:`join_handlers`, with a deadline.
    """

    daemon_threads = True
    block_on_close = False  # join_handlers() does it, with a deadline

    def __init__(self, address: Tuple[str, int], fake: "FakeOpenAIServer") -> None:
        self.fake = fake
        self._conn_lock = threading.Lock()
        self._conns: Set[socket.socket] = set()
        self._handlers: List[threading.Thread] = []
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name=f"fake-openai-{self.server_address[1]}-handler", daemon=True)
        with self._conn_lock:
            self._conns.add(request)
            self._handlers = [t for t in self._handlers if t.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join_handlers(self, deadline: float) -> List[threading.Thread]:
        """Join every handler thread until ``deadline`` (``time.monotonic()``); returns those still alive."""
        with self._conn_lock:
            threads = list(self._handlers)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive()]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are expected here; stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    timeout = 10  # bound on an idle keep-alive connection

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._handle(self, "POST")

    def do_PUT(self) -> None:
        self.server.fake._handle(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.fake._handle(self, "DELETE")


class _ClientGone(Exception):
    """The server is stopping, or the client closed its connection."""


class FakeOpenAIServer:
    """A fake OpenAI chat-completions server on ``127.0.0.1`` (port chosen by the OS).

    Use as a context manager (``with FakeOpenAIServer() as srv:``) or call
    :meth:`start` / :meth:`stop`.  Point a client at :attr:`base_url`
    (``http://127.0.0.1:PORT/v1``).  See the module docstring for the endpoints,
    response shapes and errors.

    :param require_auth: answer 401 to requests without an
        ``Authorization: Bearer <token>`` header (default True).  The token
        itself is never checked nor stored.
    :param supports_json_schema: when False, a ``response_format`` of type
        ``json_schema`` is answered 400 (default True).
    """

    def __init__(self, *, require_auth: bool = True, supports_json_schema: bool = True) -> None:
        self.require_auth = require_auth
        self.supports_json_schema = supports_json_schema
        self._lock = threading.Lock()
        self._queues: Dict[str, Deque[Behaviour]] = {}
        self._defaults: Dict[str, Behaviour] = {}
        self._requests: List[RecordedRequest] = []
        self._calls: Dict[str, int] = {}
        self._ids = itertools.count(1)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._changed = threading.Condition(self._lock)  # a request arrived, or entered/left a delay
        self._delayed = 0  # requests waiting in a scripted delay right now

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeOpenAIServer":
        """Bind ``127.0.0.1:0`` and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("FakeOpenAIServer is already running")
        self._stopping = threading.Event()
        server = _Server(("127.0.0.1", 0), self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-openai-{server.server_address[1]}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, wake any sleeping behaviour, close connections, join the threads.

        Safe to call twice.  Requests still waiting in a :meth:`Behaviour.sleep`
        are dropped without an answer.  When it returns, the serving thread and
        every handler thread have ended (unless one is stuck past ``timeout``
        seconds, which then raises :class:`RuntimeError` naming it).
        """
        server, thread = self._server, self._thread
        if server is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping.set()  # wakes handlers waiting in a scripted delay
        server.shutdown()  # no new connection is accepted after this
        server.cut_connections()  # handlers reading or writing a socket return
        server.server_close()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = server.join_handlers(deadline)
        self._server = self._thread = None
        if stuck or (thread is not None and thread.is_alive()):
            names = [t.name for t in stuck] + ([thread.name] if thread is not None and thread.is_alive() else [])
            raise RuntimeError(f"FakeOpenAIServer.stop: threads still running after {timeout:g} s: {names}")

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on (only while running)."""
        if self._server is None:
            raise RuntimeError("FakeOpenAIServer is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the ``base_url`` for an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ scripting

    def script(self, model: str, behaviours: Iterable[Behaviour]) -> "FakeOpenAIServer":
        """Queue ``behaviours`` for ``model``; each request consumes the next one.

        Appends to anything already queued.  When the queue is empty the model's
        default (see :meth:`set_default`) answers.  Returns self for chaining.
        """
        items = list(behaviours)
        for item in items:
            if not isinstance(item, Behaviour):
                raise TypeError(f"expected Behaviour, got {type(item).__name__}")
        with self._lock:
            self._queues.setdefault(model, deque()).extend(items)
        return self

    def set_default(self, model: str, behaviour: Behaviour) -> "FakeOpenAIServer":
        """Answer ``model`` with ``behaviour`` whenever its queue is empty."""
        if not isinstance(behaviour, Behaviour):
            raise TypeError(f"expected Behaviour, got {type(behaviour).__name__}")
        with self._lock:
            self._defaults[model] = behaviour
            self._queues.setdefault(model, deque())
        return self

    def models(self) -> List[str]:
        """The model names configured by :meth:`script` or :meth:`set_default`, sorted."""
        with self._lock:
            return sorted(set(self._queues) | set(self._defaults))

    def pending(self, model: str) -> int:
        """How many scripted behaviours for ``model`` are still unused."""
        with self._lock:
            return len(self._queues.get(model, ()))

    # ------------------------------------------------------------------ synchronising

    def wait_for_requests(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` requests have been received (any path); False on timeout.

        Use this instead of sleeping when a test must act once the client's request is in.
        """
        with self._changed:
            return self._changed.wait_for(lambda: len(self._requests) >= count, timeout)

    def wait_for_delayed(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` requests are waiting in a scripted delay right now; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._delayed >= count, timeout)

    # ------------------------------------------------------------------ recording

    @property
    def requests(self) -> List[RecordedRequest]:
        """A snapshot (a new list) of every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self, model: Optional[str] = None) -> List[RecordedRequest]:
        """Recorded ``POST /v1/chat/completions`` requests, optionally for one model."""
        return [
            r
            for r in self.requests
            if r.method == "POST"
            and r.path == "/v1/chat/completions"
            and (model is None or r.model == model)
        ]

    def calls(self, model: str) -> int:
        """How many chat-completions requests named ``model`` (whatever the answer)."""
        with self._lock:
            return self._calls.get(model, 0)

    @property
    def call_counts(self) -> Dict[str, int]:
        """A copy of the per-model chat-completions request counts."""
        with self._lock:
            return dict(self._calls)

    def reset(self) -> None:
        """Forget scripts, defaults, recorded requests and counts."""
        with self._lock:
            self._queues.clear()
            self._defaults.clear()
            self._requests.clear()
            self._calls.clear()

    # ------------------------------------------------------------------ serving

    def _handle(self, handler: _Handler, method: str) -> None:
        path = handler.path.split("?", 1)[0].rstrip("/") or "/"
        headers: Dict[str, str] = {}
        has_bearer = False
        for name, value in handler.headers.items():
            if name.lower() == "authorization":
                scheme, _, token = value.partition(" ")
                has_bearer = scheme.lower() == "bearer" and bool(token.strip())
            if name.lower() not in _SECRET_HEADERS:
                headers[name] = value

        raw = self._read_body(handler)
        body: Any = None
        body_ok = True
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body_ok = False

        record = RecordedRequest(method=method, path=path, headers=headers, has_bearer=has_bearer, body=body)
        is_chat = method == "POST" and path == "/v1/chat/completions"
        if is_chat and isinstance(body, dict):
            model = body.get("model")
            record.model = model if isinstance(model, str) else None
            messages = body.get("messages")
            record.messages = messages if isinstance(messages, list) else None
            rf = body.get("response_format")
            record.response_format = rf if isinstance(rf, dict) else None
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            record.max_tokens = limit if isinstance(limit, int) else None
        with self._changed:
            self._requests.append(record)
            if record.model is not None:
                self._calls[record.model] = self._calls.get(record.model, 0) + 1
            self._changed.notify_all()

        try:
            if self.require_auth and path.startswith("/v1/") and not has_bearer:
                self._send_error(
                    handler, record, 401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error", code="invalid_api_key",
                )
            elif method == "GET" and path == "/v1/models":
                self._send_json(handler, record, 200, {
                    "object": "list",
                    "data": [
                        {"id": name, "object": "model", "created": 0, "owned_by": "fake-openai"}
                        for name in self.models()
                    ],
                })
            elif is_chat:
                self._chat(handler, record, body if body_ok else None)
            else:
                self._send_error(
                    handler, record, 404, f"Invalid URL ({method} {path})", "invalid_request_error",
                    code="unknown_url",
                )
        except _ClientGone:
            handler.close_connection = True

    @staticmethod
    def _read_body(handler: _Handler) -> bytes:
        length = handler.headers.get("Content-Length")
        if length:
            try:
                return handler.rfile.read(int(length))
            except ValueError:
                handler.close_connection = True
                return b""
        if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            try:
                while True:
                    size_line = handler.rfile.readline()
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(handler.rfile.read(size))
                    handler.rfile.readline()
            except ValueError:
                handler.close_connection = True
                return b""
            return b"".join(chunks)
        return b""

    def _chat(self, handler: _Handler, record: RecordedRequest, body: Any) -> None:
        problem = self._request_problem(body)
        if problem is not None:
            message, param = problem
            return self._send_error(handler, record, 400, message, "invalid_request_error", param=param)
        model, messages = body["model"], body["messages"]
        behaviour, known = self._next_behaviour(model)
        if behaviour is None:
            return self._send_unscripted(handler, record, model, known)
        if behaviour.delay > 0 and self._delay(behaviour.delay):
            raise _ClientGone()
        if behaviour.kind == "error":
            return self._send_scripted_error(handler, record, behaviour)
        return self._send_completion(handler, record, model, messages, self._cut(behaviour, record.max_tokens))

    @staticmethod
    def _cut(behaviour: Behaviour, max_tokens: Optional[int]) -> Behaviour:
        """A :meth:`Behaviour.truncated` answer as this request's ``max_tokens`` leaves it."""
        if behaviour.kind != "truncated":
            return behaviour
        text = behaviour.content or ""
        if max_tokens is None or _estimate_tokens(text) <= max_tokens:
            return dataclasses.replace(behaviour, kind="ok")
        return dataclasses.replace(behaviour, kind="ok", content=text[:max_tokens * 4],
                                   completion_tokens=max_tokens, finish_reason="length")

    def _request_problem(self, body: Any) -> Optional[tuple[str, Optional[str]]]:
        """Why the API refuses this chat request with a 400: ``(message, param)``; None when it is valid."""
        if not isinstance(body, dict):
            return "We could not parse the JSON body of your request.", None
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "you must provide a model parameter", "model"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "Invalid 'messages': expected a non-empty array.", "messages"
        if body.get("stream"):
            return "FakeOpenAIServer does not support stream=true.", "stream"
        rf = body.get("response_format")
        return None if rf is None else self._response_format_problem(rf)

    def _response_format_problem(self, rf: Any) -> Optional[tuple[str, Optional[str]]]:
        """Why the API refuses this ``response_format``: ``(message, param)``; None when it is valid."""
        rf_type = rf.get("type") if isinstance(rf, dict) else None
        if rf_type not in ("text", "json_object", "json_schema"):
            return (
                f"Invalid value: {rf_type!r}. Supported values are: 'text', 'json_object' "
                "and 'json_schema'.",
                "response_format.type",
            )
        if rf_type == "json_schema":
            spec = rf.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                return (
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    "response_format.json_schema.name",
                )
            if not self.supports_json_schema:
                return (
                    "Invalid parameter: 'response_format' of type 'json_schema' is not "
                    "supported with this model.",
                    "response_format",
                )
        return None

    def _next_behaviour(self, model: str) -> tuple[Optional[Behaviour], bool]:
        """The next scripted behaviour of ``model`` (else its default, else None), and whether the model is known."""
        with self._lock:
            queue = self._queues.get(model)
            known = queue is not None or model in self._defaults
            behaviour: Optional[Behaviour] = None
            if queue:
                behaviour = queue.popleft()
            elif model in self._defaults:
                behaviour = self._defaults[model]
        return behaviour, known

    def _send_unscripted(self, handler: _Handler, record: RecordedRequest, model: str, known: bool) -> None:
        """The answer when ``model`` has nothing to play: 404 for an unknown model, 500 for a used-up script."""
        if not known:
            return self._send_error(
                handler, record, 404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error", code="model_not_found",
            )
        return self._send_error(
            handler, record, 500,
            f"FakeOpenAIServer: the script for model `{model}` is used up and it has no "
            "default behaviour.",
            "server_error", code="fake_script_exhausted",
        )

    def _send_scripted_error(self, handler: _Handler, record: RecordedRequest, behaviour: Behaviour) -> None:
        """A scripted error answer, with ``Retry-After`` headers when the behaviour sets a wait."""
        extra = dict(behaviour.headers)
        if behaviour.retry_after is not None:
            seconds = max(0.0, float(behaviour.retry_after))
            extra.setdefault("Retry-After", str(max(1, int(-(-seconds // 1)))))
            extra.setdefault("retry-after-ms", str(int(round(seconds * 1000))))
        return self._send_error(
            handler, record, behaviour.status, behaviour.error_message, behaviour.error_type,
            code=behaviour.error_code, headers=extra,
        )

    def _send_completion(self, handler: _Handler, record: RecordedRequest, model: str, messages: list[Any],
                         behaviour: Behaviour) -> None:
        """A chat completion carrying the behaviour's content and token counts (estimated when not scripted)."""
        content = behaviour.content
        prompt_tokens = behaviour.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = _estimate_tokens(json.dumps(messages))
        completion_tokens = behaviour.completion_tokens
        if completion_tokens is None:
            completion_tokens = _estimate_tokens((content or "") + (behaviour.refusal or "")
                                                 + "".join(a for _, a in behaviour.tool_calls))
        message: Dict[str, Any] = {"role": "assistant", "content": content if behaviour.kind != "refusal" else None,
                                   "refusal": behaviour.refusal}
        if behaviour.kind == "ok" and content is None and not behaviour.tool_calls:
            message["content"] = ""
        if behaviour.tool_calls:
            message["tool_calls"] = [{"id": f"call_fake_{i}", "type": "function",
                                      "function": {"name": name, "arguments": args}}
                                     for i, (name, args) in enumerate(behaviour.tool_calls)]
        payload: Dict[str, Any] = {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": behaviour.finish_reason,
            }],
        }
        if not behaviour.omit_usage:
            payload["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        self._send_json(handler, record, 200, payload)

    def _delay(self, seconds: float) -> bool:
        """Wait ``seconds`` (a scripted latency); True when the server is stopping (then at once)."""
        with self._changed:
            self._delayed += 1
            self._changed.notify_all()
        try:
            return self._stopping.wait(seconds)
        finally:
            with self._changed:
                self._delayed -= 1
                self._changed.notify_all()

    def _send_error(
        self,
        handler: _Handler,
        record: RecordedRequest,
        status: int,
        message: str,
        error_type: str,
        *,
        param: Optional[str] = None,
        code: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        payload = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
        self._send_json(handler, record, status, payload, headers)

    def _send_json(
        self,
        handler: _Handler,
        record: RecordedRequest,
        status: int,
        payload: Any,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        record.status = status  # set first: the client may read `requests` as soon as it has the answer
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("x-request-id", f"req_fake_{id(record):x}")
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
        except OSError as exc:  # client hung up (e.g. it timed out)
            record.status = None
            raise _ClientGone() from exc
