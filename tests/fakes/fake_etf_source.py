"""A fake of Yahoo Finance's chart API for the real ``yfinance`` client, on 127.0.0.1.

Standard library only. It answers what ``yfinance.Ticker(...).history(interval="1d")`` asks,
in Yahoo's shapes::

    GET /                            fc.yahoo.com: 404 with an ``A3`` cookie (the "basic" cookie strategy)
    GET /v1/test/getcrumb            a crumb, text/plain
    GET /consent, ...                guce/consent.yahoo.com (the "csrf" strategy): 404, no form
    GET /v8/finance/chart/{TICKER}   ``{"chart": {"result": [{"meta", "timestamp", "indicators"}], "error": null}}``;
                                     ``period1``/``period2`` (epoch s, end exclusive) or ``range=1d``
    unknown ticker                   404 ``{"chart": {"result": null, "error": {"code": "Not Found",
                                     "description": "No data found, symbol may be delisted"}}}``; then
                                     ``/v10/finance/quoteSummary/{T}`` 404 ``Quote not found for symbol``
    fail_next(n, 429)                ``Too Many Requests`` text/plain, Yahoo's rate-limit answer

A daily bar's timestamp is its session's open (09:30 New York) in epoch seconds, as Yahoo
sends it; ``indicators.adjclose`` carries the adjusted close (equal to the close unless given).
A forming bar (today's session in progress) is stamped with the time of its latest trade.
Point yfinance here with ``market.etf_daily.YFinanceBars(base_url=fake.base_url)``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
VALID_RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
NOT_FOUND = {"chart": {"result": None, "error": {"code": "Not Found",
                                                 "description": "No data found, symbol may be delisted"}}}


@dataclass
class Recorded:
    """One request the fake answered: method, path, query parameters, status."""

    method: str
    path: str
    query: dict[str, str]
    status: int


def session_open(day: date) -> int:
    """Epoch seconds of 09:30 New York on ``day`` (how Yahoo stamps a daily bar)."""
    return int(datetime.combine(day, time(9, 30), NEW_YORK).timestamp())


class FakeYahoo:
    """The fake server. Use as a context manager; :attr:`base_url` is ``http://127.0.0.1:PORT``.

    Script it with :meth:`set_bars` (and :meth:`fail_next`); read :meth:`requests`.
    """

    def __init__(self) -> None:
        self._bars: dict[str, list[tuple]] = {}
        self._forming: dict[str, tuple[datetime, tuple]] = {}
        self._fail: list[int] = []
        self._requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "FakeYahoo":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-yahoo", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ scripting

    def set_bars(self, ticker: str, rows: Iterable[tuple], forming: tuple | None = None,
                 forming_at: datetime | None = None) -> None:
        """Serve ``rows`` for ``ticker``: ``(session_date, open, high, low, close, volume[, adjclose])``,
        oldest first. ``forming``: today's bar in progress ``(open, high, low, close, volume)``, its
        latest trade at ``forming_at`` (UTC)."""
        with self._lock:
            self._bars[ticker.upper()] = [tuple(r) for r in rows]
            if forming is not None:
                self._forming[ticker.upper()] = (forming_at or datetime.now(timezone.utc), tuple(forming))
            else:
                self._forming.pop(ticker.upper(), None)

    def fail_next(self, count: int = 1, status: int = 429) -> None:
        """Answer the next ``count`` chart requests with ``status`` (429: Yahoo's ``Too Many Requests``)."""
        with self._lock:
            self._fail += [status] * count

    def requests(self, path_prefix: str = "") -> list[Recorded]:
        """The requests answered, oldest first, whose path starts with ``path_prefix``."""
        with self._lock:
            return [r for r in self._requests if r.path.startswith(path_prefix)]

    def chart_requests(self, ticker: str | None = None) -> list[Recorded]:
        """The chart requests (of ``ticker``), oldest first."""
        return self.requests(f"/v8/finance/chart/{ticker.upper()}" if ticker else "/v8/finance/chart/")

    # ------------------------------------------------------------------ serving

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            status, ctype, body, headers = self._answer(parts.path, query)
        except Exception as exc:  # a bug of the fake: answer 500 and keep it for the test
            self.errors.append(f"{type(exc).__name__}: {exc}")
            status, ctype, body, headers = 500, "text/plain", b"fake error", {}
        with self._lock:
            self._requests.append(Recorded("GET", parts.path, query, status))
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _answer(self, path: str, query: dict[str, str]) -> tuple[int, str, bytes, dict[str, str]]:
        if path == "/":
            cookie = "A3=d=AQABBFAKE&S=AQAAAFAKE; Max-Age=31557600; Path=/; SameSite=Lax; HttpOnly"
            return 404, "text/html", b"<html><body>404</body></html>", {"Set-Cookie": cookie}
        if path == "/v1/test/getcrumb":
            return 200, "text/plain", b"fAkEcRuMb01", {}
        if path.startswith("/v10/finance/quoteSummary/"):  # yfinance's fallback for a ticker without time zone
            ticker = path.rsplit("/", 1)[-1].upper()
            err = {"quoteSummary": {"result": None, "error": {
                "code": "Not Found", "description": f"Quote not found for symbol: {ticker}"}}}
            return 404, "application/json", json.dumps(err).encode(), {}
        if path.startswith("/v7/finance/quote"):
            return 200, "application/json", json.dumps({"quoteResponse": {"result": [], "error": None}}).encode(), {}
        if not path.startswith("/v8/finance/chart/"):
            return 404, "text/html", b"<html><body>Not Found</body></html>", {}
        with self._lock:
            fail = self._fail.pop(0) if self._fail else None
        if fail == 429:
            return 429, "text/plain", b"Too Many Requests\r\n", {}
        if fail is not None:
            return fail, "text/html", b"<html><body>Will be right back...</body></html>", {}
        ticker = path.rsplit("/", 1)[-1].upper()
        with self._lock:
            rows = list(self._bars.get(ticker, []))
            forming = self._forming.get(ticker)
        if ticker not in self._bars:
            return 404, "application/json", json.dumps(NOT_FOUND).encode(), {}
        return 200, "application/json", json.dumps(self._chart(ticker, rows, forming, query)).encode(), {}

    def _chart(self, ticker: str, rows: list[tuple], forming: tuple[datetime, tuple] | None,
               query: dict[str, str]) -> dict:
        stamped = [(session_open(r[0]), r[1:6], r[6] if len(r) > 6 else r[4]) for r in rows]
        if forming is not None:
            at, (o, hi, lo, c, v) = forming
            stamped.append((int(at.timestamp()), (o, hi, lo, c, v), c))
        if "period1" in query:
            start, end = int(query["period1"]), int(query.get("period2", 2**40))
            sel = [s for s in stamped if start <= s[0] < end]
        else:  # range=1d (yfinance's time-zone probe) and the other ranges: the newest bar
            sel = stamped[-1:]
        last_day = rows[-1][0] if rows else date.today()
        reg_start = session_open(last_day)
        reg_end = int(datetime.combine(last_day, time(16, 0), NEW_YORK).timestamp())
        noon = datetime.combine(last_day, time(12), NEW_YORK)
        gmtoffset = noon.utcoffset()
        assert gmtoffset is not None  # an aware time has an offset
        offset = int(gmtoffset.total_seconds())
        tzname = noon.tzname()
        period = {"timezone": tzname, "gmtoffset": offset}
        last_close = stamped[-1][1][3] if stamped else None
        meta = {
            "currency": "USD", "symbol": ticker, "exchangeName": "PCX", "fullExchangeName": "NYSEArca",
            "instrumentType": "ETF", "firstTradeDate": session_open(rows[0][0]) if rows else None,
            "regularMarketTime": stamped[-1][0] if stamped else reg_end, "hasPrePostMarketData": True,
            "gmtoffset": offset, "timezone": tzname, "exchangeTimezoneName": "America/New_York",
            "regularMarketPrice": last_close, "chartPreviousClose": stamped[0][1][3] if stamped else None,
            "priceHint": 2,
            "currentTradingPeriod": {
                "pre": {**period, "start": reg_start - 19800, "end": reg_start},
                "regular": {**period, "start": reg_start, "end": reg_end},
                "post": {**period, "start": reg_end, "end": reg_end + 14400}},
            "dataGranularity": query.get("interval", "1d"), "range": query.get("range", ""),
            "validRanges": VALID_RANGES,
        }
        if not sel:
            return {"chart": {"result": [{"meta": meta, "indicators": {"quote": [{}], "adjclose": [{}]}}],
                              "error": None}}
        quote = {k: [s[1][i] for s in sel] for i, k in enumerate(["open", "high", "low", "close", "volume"])}
        quote["volume"] = [int(v) for v in quote["volume"]]
        return {"chart": {"result": [{
            "meta": meta, "timestamp": [s[0] for s in sel],
            "indicators": {"quote": [quote], "adjclose": [{"adjclose": [s[2] for s in sel]}]},
        }], "error": None}}
