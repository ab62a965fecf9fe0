"""Protective exits at the venues: what a leg's client order id tells about its OCA group.

A protective exit (``STP`` stop-loss, ``MIT`` take-profit; see :class:`brokers.base.OrderRequest`)
is one or two legs sharing an OCA group: the first leg to trigger cancels the other. IB keeps the
group on the order (``ocaGroup``). Binance has no OCA and no free-text field on a conditional order
except its client id (``clientAlgoId``, at most 36 characters), so a venue adapter recovers the group,
and the sibling leg, from the client order id the Commander gave the leg
(:func:`commander.protect.exit_id`): ``px{S|T}{exit key}-{SYMBOL}`` through
:func:`bus.ids.client_order_id`, where ``S`` is the stop, ``T`` the take-profit and the exit key 16
hex digits (owner, digest, nonce); the group is ``px{exit key}-{SYMBOL}``
(:func:`commander.protect.oca_group`). Both are rebuilt with :func:`bus.ids.client_order_id` from the
key and the project symbol, so an id shortened past 36 characters is rebuilt exactly too.

The convention itself is in :mod:`bus.ids` (``EXIT_ID``, ``exit_leg_id``, ``exit_group_id``), shared by
the Commander that makes the ids and the adapters that read them.
"""

from __future__ import annotations

from bus.ids import EXIT_ID, exit_group_id, exit_key, exit_leg_id

#: Leg letter per order type.
LEG_CODE = {"STP": "S", "MIT": "T"}


def is_exit_id(client_order_id_: str | None) -> bool:
    """Whether the id names a leg of a Commander-placed exit."""
    return bool(EXIT_ID.match(client_order_id_ or ""))


def oca_group_of(client_order_id_: str | None, symbol: str) -> str | None:
    """The OCA group of the leg with this id on project ``symbol``, else None."""
    key = exit_key(client_order_id_)
    return exit_group_id(key, symbol) if key else None


def sibling_ids(client_order_id_: str, symbol: str) -> list[str]:
    """The client order id of the other leg of this leg's exit on project ``symbol`` (empty for a non-leg)."""
    m, key = EXIT_ID.match(client_order_id_), exit_key(client_order_id_)
    if not m or not key:
        return []
    return [exit_leg_id("T" if m.group(1) == "S" else "S", key, symbol)]
