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


#: A protective exit leg's client order id (:mod:`commander.protect` makes them, venue adapters read them):
#: ``px``, the leg (``S`` stop-loss, ``T`` take-profit), the 16-hex exit key the legs share (owner 6, digest 6,
#: nonce 4), ``-``, then the symbol, through :func:`client_order_id`.
EXIT_ID = re.compile(r"^px([ST])([0-9a-f]{6})([0-9a-f]{6})([0-9a-f]{4})-")


def exit_leg_id(leg_code: str, key: str, symbol: str) -> str:
    """Client order id of one leg (``S`` or ``T``) of the exit with 16-hex ``key`` on ``symbol`` (≤ 36 chars)."""
    return client_order_id(f"px{leg_code}{key}", symbol)


def exit_group_id(key: str, symbol: str) -> str:
    """The OCA group shared by the legs of the exit with 16-hex ``key`` on ``symbol`` (≤ 36 chars)."""
    return client_order_id(f"px{key}", symbol)


def exit_key(client_order_id_: str | None) -> str | None:
    """The 16-hex key of a leg's client order id (it survives the id's shortening), None for any other id."""
    m = EXIT_ID.match(client_order_id_ or "")
    return "".join(m.group(2, 3, 4)) if m else None
