"""An intent's target positions as columns: the store edge of the array path (issue 16).

A 1,000 × 2,000 decision has 2,000,000 target positions. As validated pydantic objects they take
about 1.6 GiB, more than the decision itself (a Cloud Function has 2 GiB). :func:`parse_intent_columns`
validates an intent document exactly as :func:`commander.state.parse_intent` does (the same models, the
same ``error`` stand-in for a document that does not validate), then keeps its targets as columns
(:class:`TargetColumns`, about 40 bytes a target) and drops the objects, one intent at a time.

:class:`TargetColumns` is a ``Sequence[TargetPosition]`` put in ``Intent.target_positions``: code that
iterates it gets the same (validated) values back as :class:`~bus.models.TargetPosition` objects built
on the fly; :mod:`commander.decide_arrays` reads the columns directly. Pydantic cannot dump such an
intent (``model_dump`` warns and leaves the columns object, ``model_dump_json`` raises): it is the
Commander's read-only input; :func:`with_objects` gives the dumpable intent back.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any, overload

import numpy as np

from bus.models import Intent, TargetPosition

#: The sizes (exactly one is given per target), then the optional numbers; NaN where not given (the models
#: refuse NaN, so it means "not given" only).
SIZES = ("quantity", "weight", "notional")
OPTIONAL = ("leverage", "stop_loss", "take_profit", "confidence")
#: The instrument of a target as (secType, exchange, currency, contract_details).
_DEFAULT_INSTRUMENT: tuple[str, str, str, dict[str, Any] | None] = ("STK", "SMART", "USD", None)
#: Every field of a target, in this order: symbol, sizes, optional numbers, instrument.
_READ = attrgetter("symbol", *SIZES, *OPTIONAL, "secType", "exchange", "currency", "contract_details")


class TargetColumns(Sequence[TargetPosition]):
    """The target positions of one intent as columns, in target order.

    Attributes:
        symbols: symbol per target (interned strings, shared between intents).
        quantity, weight, notional: float64 arrays (units, fraction of the strategy's capital, base currency),
            NaN where not given.
        optional: name -> float64 array (NaN where not given) of each of ``leverage``, ``stop_loss``,
            ``take_profit``, ``confidence`` that at least one target gives.
        kinds: index into ``instruments`` per target (int32), None when every target has the default
            instrument (``STK``, ``SMART``, ``USD``, no contract details).
        instruments: the distinct (secType, exchange, currency, contract_details) of the targets.
    """

    __slots__ = ("symbols", "quantity", "weight", "notional", "optional", "kinds", "instruments")

    def __init__(self, symbols: list[str], quantity: np.ndarray, weight: np.ndarray, notional: np.ndarray,
                 optional: dict[str, np.ndarray], kinds: np.ndarray | None,
                 instruments: list[tuple[str, str, str, dict[str, Any] | None]]) -> None:
        self.symbols, self.quantity, self.weight, self.notional = symbols, quantity, weight, notional
        self.optional, self.kinds, self.instruments = optional, kinds, instruments

    @classmethod
    def from_targets(cls, targets: Sequence[TargetPosition]) -> TargetColumns:
        """The columns of validated ``targets`` (their values unchanged, to the bit)."""
        n = len(targets)
        if not n:
            return cls([], np.empty(0), np.empty(0), np.empty(0), {}, None, [_DEFAULT_INSTRUMENT])
        fields = list(zip(*map(_READ, targets), strict=True))  # one pass over the objects, then a tuple per field
        intern = sys.intern
        symbols = [intern(x) for x in fields[0]]
        quantity, weight, notional = (np.array(c, dtype=float) for c in fields[1:4])  # None: NaN
        optional = {f: np.array(c, dtype=float) for f, c in zip(OPTIONAL, fields[4:8], strict=True)
                    if c.count(None) < n}
        kinds, instruments = _instruments(fields[8], fields[9], fields[10], fields[11])
        return cls(symbols, quantity, weight, notional, optional, kinds, instruments)

    def __len__(self) -> int:
        return len(self.symbols)

    @overload
    def __getitem__(self, k: int) -> TargetPosition: ...

    @overload
    def __getitem__(self, k: slice) -> list[TargetPosition]: ...

    def __getitem__(self, k: int | slice) -> TargetPosition | list[TargetPosition]:
        """The target at ``k`` (a new :class:`~bus.models.TargetPosition` with its values), or a list of them."""
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        k = k % len(self)
        return self._target(k, [(f, self.column(f)[k:k + 1].tolist()) for f in (*SIZES, *self.optional)], 0)

    def __iter__(self) -> Iterator[TargetPosition]:
        """The targets in order, each a new :class:`~bus.models.TargetPosition` (about 3 µs each)."""
        values = [(f, self.column(f).tolist()) for f in (*SIZES, *self.optional)]
        for k in range(len(self)):
            yield self._target(k, values, k)

    def _target(self, k: int, values: list[tuple[str, list[float]]], at: int) -> TargetPosition:
        """The target at ``k``, its numbers at ``at`` of ``values`` ((name, column as a list) pairs). The values
        were validated once; validating them again (a float is kept as it is) is faster than ``model_construct``."""
        doc: dict[str, Any] = {"symbol": self.symbols[k]}
        for f, column in values:
            x = column[at]
            if x == x:  # NaN: not given
                doc[f] = x
        if self.kinds is not None:
            doc["secType"], doc["exchange"], doc["currency"], doc["contract_details"] = self.instrument(k)
        return TargetPosition.model_validate(doc)

    def __eq__(self, other: object) -> bool:
        """Equal to a sequence of the same targets (objects or columns), as a list of them is."""
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(other) == len(self) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable arrays, as a list: not hashable

    def instrument(self, k: int) -> tuple[str, str, str, dict[str, Any] | None]:
        """(secType, exchange, currency, contract_details) of the target at ``k``."""
        return self.instruments[0 if self.kinds is None else int(self.kinds[k])]

    def column(self, name: str) -> np.ndarray:
        """The float64 column ``name`` (one of :data:`SIZES` or :data:`OPTIONAL`; NaN where not given)."""
        if name in SIZES:
            return getattr(self, name)
        return self.optional.get(name, np.full(len(self), np.nan))


def _instruments(sec: tuple[str, ...], exchange: tuple[str, ...], currency: tuple[str, ...],
                 details: tuple[dict[str, Any] | None, ...]
                 ) -> tuple[np.ndarray | None, list[tuple[str, str, str, dict[str, Any] | None]]]:
    """(index per target into the distinct instruments, or None when all are the default; the instruments), from
    the targets' secType, exchange, currency and contract_details."""
    n = len(sec)
    d_sec, d_exchange, d_currency, _ = _DEFAULT_INSTRUMENT
    if (details.count(None) == n and sec.count(d_sec) == n and exchange.count(d_exchange) == n
            and currency.count(d_currency) == n):
        return None, [_DEFAULT_INSTRUMENT]
    found: dict[tuple[str, str, str], int] = {}
    instruments: list[tuple[str, str, str, dict[str, Any] | None]] = []
    kinds = np.zeros(n, dtype=np.int32)
    for k, key in enumerate(zip(sec, exchange, currency, strict=True)):
        if details[k] is not None:  # kept as it is, one entry each
            kinds[k] = len(instruments)
            instruments.append((*key, details[k]))
            continue
        at = found.get(key)
        if at is None:
            at = found[key] = len(instruments)
            instruments.append((*key, None))
        kinds[k] = at
    return kinds, instruments


def columns(intent: Intent) -> TargetColumns:
    """The targets of ``intent`` as columns: its own when it holds them, else built from its objects."""
    tp: object = intent.target_positions
    return tp if isinstance(tp, TargetColumns) else TargetColumns.from_targets(intent.target_positions)


def with_columns(intent: Intent) -> Intent:
    """``intent`` with its targets as :class:`TargetColumns` (the validated objects dropped); the same intent
    when it has none or holds columns already."""
    tp: object = intent.target_positions
    if isinstance(tp, TargetColumns) or not intent.target_positions:
        return intent
    return intent.model_copy(update={"target_positions": TargetColumns.from_targets(intent.target_positions)})


def with_objects(intent: Intent) -> Intent:
    """``intent`` with its targets as a list of :class:`~bus.models.TargetPosition` again (to dump or store it:
    pydantic cannot serialize :class:`TargetColumns`); the same intent when it holds objects."""
    tp: object = intent.target_positions
    return intent.model_copy(update={"target_positions": list(tp)}) if isinstance(tp, TargetColumns) else intent


def parse_intent_columns(strategy_id: str, doc: dict[str, Any] | None) -> Intent | None:
    """:func:`commander.state.parse_intent` (the same validation, the same ``error`` stand-in, None without a
    document) with the targets kept as :class:`TargetColumns`: peak memory is one intent's objects."""
    from commander.state import parse_intent  # commander.state builds on commander.decide, which builds on this

    intent = parse_intent(strategy_id, doc)
    return None if intent is None else with_columns(intent)
