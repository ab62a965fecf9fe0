"""Post alerts to webhooks, each kind de-duplicated and rate-limited across processes.

Configuration: ``config/alerts.yaml`` (:class:`AlertsConfig`). A webhook's URL is a
secret: the file names the environment variable holding it (``url_env``), and a
webhook whose variable is unset is left out (said once in the log). Formats:

* ``json``: ``{"source": "intent-bus", "alert": {kind, key, severity, title, text, execution_id},
  "sent_at": ISO-8601}``, a generic JSON webhook;
* ``slack``: Slack's incoming-webhook body ``{"text": ...}``;
* ``discord``: Discord's webhook body ``{"content": ...}``.

De-duplication and rate limit, per kind, in ``alerts/{kind}`` (one Firestore
transaction per alert, so two processes never both send the same alert): an alert
whose key was sent less than ``window_seconds`` ago is suppressed, and at most
``max_per_kind`` alerts of a kind go out per window; the document counts
``sent`` and ``suppressed``. Delivery retries transient failures (``tenacity``:
3 attempts, exponential back-off); a delivery that still fails is logged and
recorded (``last_error``), never raised: an alert must not fail the run it reports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from bus.redaction import redact, register
from bus.store import Store
from pipeline.alerts import Alert

log = logging.getLogger(__name__)

ALERTS_COLLECTION = "alerts"
#: Seconds one webhook request may take.
POST_TIMEOUT = 5.0


class Webhook(BaseModel):
    """One webhook: its body format and the environment variable holding its URL."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["json", "slack", "discord"] = "json"
    url_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    kinds: list[str] | None = Field(None, description="only these alert kinds (default: all)")


class AlertsConfig(BaseModel):
    """``config/alerts.yaml``: the webhooks, the de-duplication window (seconds) and the per-kind limit."""

    model_config = ConfigDict(extra="forbid")
    window_seconds: float = Field(3600.0, gt=0)
    max_per_kind: int = Field(5, ge=1, description="alerts of one kind sent per window, at most")
    webhooks: list[Webhook] = Field(default_factory=list)


def load_alerts_config(config_dir: Path) -> AlertsConfig:
    """``config_dir/alerts.yaml``, or the defaults (no webhook) when the file does not exist.

    Raises:
        ValueError: the file is not a YAML mapping, or does not validate.
    """
    path = Path(config_dir) / "alerts.yaml"
    if not path.exists():
        return AlertsConfig()
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping")
    return AlertsConfig.model_validate(raw)


def render(alert: Alert, fmt: str, now: datetime) -> dict[str, Any]:
    """The webhook body of ``alert`` in format ``fmt`` (``json``, ``slack`` or ``discord``)."""
    line = f"[{alert.severity.upper()}] {alert.title}"
    text = f"{line}\n{alert.text}" + (f"\nexecution: {alert.execution_id}" if alert.execution_id else "")
    if fmt == "slack":
        return {"text": text}
    if fmt == "discord":
        return {"content": text[:2000]}
    return {"source": "intent-bus", "alert": alert.as_dict(), "sent_at": now.isoformat()}


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 429 or exc.code >= 500
    return isinstance(exc, (urllib.error.URLError, TimeoutError, ConnectionError))


@retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(3),
       wait=wait_exponential(multiplier=0.2, max=2.0), reraise=True)
def post_json(url: str, body: dict[str, Any]) -> int:
    """POST ``body`` as JSON to ``url``; returns the HTTP status.

    Raises:
        urllib.error.URLError / HTTPError: after 3 attempts on a transient failure, or at once otherwise.
    """
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "intent-bus-alerts"})
    with urllib.request.urlopen(req, timeout=POST_TIMEOUT) as resp:  # noqa: S310 (URL from the operator's env)
        return int(resp.status)


@dataclass
class Delivery:
    """What became of one alert: ``sent`` (to ``targets`` webhooks), ``suppressed`` (why), ``errors``."""

    alert: Alert
    sent: bool
    suppressed: str | None = None
    targets: int = 0
    errors: list[str] = field(default_factory=list)


def _key_field(key: str) -> str:
    return "k_" + hashlib.sha1(key.encode()).hexdigest()[:16]


class Notifier:
    """Sends :class:`Alert` s through the configured webhooks, de-duplicated in the store.

    Args:
        store: where ``alerts/{kind}`` live.
        config: the webhooks and limits.
        env: where URLs are read (default ``os.environ``).
        clock: the time of a send (default: the wall clock, UTC).
        post: the HTTP call (default :func:`post_json`).
    """

    def __init__(self, store: Store, config: AlertsConfig, env: dict[str, str] | None = None,
                 clock: Callable[[], datetime] | None = None,
                 post: Callable[[str, dict[str, Any]], int] = post_json) -> None:
        self.store, self.config = store, config
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.post = post
        env = dict(os.environ) if env is None else env
        self.targets: list[tuple[Webhook, str]] = []
        for hook in config.webhooks:
            url = env.get(hook.url_env, "").strip()
            if url:
                register(url)  # a webhook URL is a secret: never logged
                self.targets.append((hook, url))
            else:
                log.info("alerts: webhook %s (%s) is off: the variable is unset", hook.url_env, hook.format)

    def _claim(self, alert: Alert, now: datetime) -> str | None:
        """Take the right to send ``alert`` (one transaction); None when taken, else why it is suppressed."""
        token, kf = uuid.uuid4().hex, _key_field(alert.key)
        window = timedelta(seconds=self.config.window_seconds)

        def decide(doc: dict[str, Any] | None) -> tuple[dict[str, float], dict[str, Any]]:
            doc = doc or {}
            last = doc.get(kf)
            if last is not None and now - last < window:
                return {"suppressed": 1}, {"last_suppressed_at": now, "last_suppressed_why": "repeat"}
            start, n = doc.get("window_start"), int(doc.get("sent_in_window") or 0)
            if start is None or now - start >= window:
                start, n = now, 0
            if n >= self.config.max_per_kind:
                return {"suppressed": 1}, {"last_suppressed_at": now, "last_suppressed_why": "rate limit"}
            return {"sent": 1}, {kf: now, "window_start": start, "sent_in_window": n + 1, "last_token": token,
                                 "last_key": alert.key, "last_title": alert.title, "last_sent_at": now}

        _, doc = self.store.update_counters(f"{ALERTS_COLLECTION}/{alert.kind}", decide)
        if (doc or {}).get("last_token") == token:
            return None
        return str((doc or {}).get("last_suppressed_why") or "repeat")

    def send(self, alerts: list[Alert]) -> list[Delivery]:
        """Claim and post each alert; every alert is also logged (warning or error), sent or not."""
        out = []
        for alert in alerts:
            now = self.clock()
            level = logging.ERROR if alert.severity == "critical" else logging.WARNING
            log.log(level, "alert %s [%s]: %s: %s", alert.kind, alert.key, alert.title, alert.text)
            why = self._claim(alert, now)
            if why is not None:
                out.append(Delivery(alert, sent=False, suppressed=why))
                continue
            d = Delivery(alert, sent=True)
            for hook, url in self.targets:
                if hook.kinds is not None and alert.kind not in hook.kinds:
                    continue
                try:
                    self.post(url, render(alert, hook.format, now))
                    d.targets += 1
                except Exception as exc:  # an alert must not fail the run it reports
                    msg = redact(f"{hook.url_env}: {type(exc).__name__}: {exc}")
                    d.errors.append(msg)
                    log.error("alert %s not delivered: %s", alert.kind, msg)
            out.append(d)
        return out
