"""Identifiers: sortable, unique ids for immutable documents, and client order ids."""

from __future__ import annotations

import re
import uuid
from datetime import datetime


def new_id(when: datetime) -> str:
    """Return ``YYYYmmddTHHMMSSZ-xxxxxxxx``: sorts by time, unique by a random suffix."""
    return f"{when:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def client_order_id(execution_id: str, symbol: str) -> str:
    """Client order id derived from the execution and symbol, so a retried step
    produces the same id and the venue refuses the duplicate.

    Only ``[A-Za-z0-9_-]`` are kept (Binance allows ``^[.A-Z:/a-z0-9_-]{1,36}$``,
    IB's ``orderRef`` any text); the result is at most 36 characters.
    """
    raw = f"{execution_id}-{symbol}"
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", raw)
    if len(clean) > 36:
        clean = clean[:27] + "-" + uuid.uuid5(uuid.NAMESPACE_URL, raw).hex[:8]
    return clean
