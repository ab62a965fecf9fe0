"""commander.arrays: books listing the same symbols as the book before them share its duplicate check.

``size_books`` checks a run of books with equal symbol lists once (``_duplicated_rows``); every book of a run
that lists a symbol twice must still be handed back (``fallback``), and no other.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bus.models import StrategyConfig, TargetPosition, TradingConfig
from commander.arrays import Book, Columns, size_books
from commander.size import unit_values
from tests.commander.test_properties import PRICES, SPECS

SYMS = sorted(PRICES)


def _book(i: int, syms: list[str]) -> Book:
    cfg = StrategyConfig(strategy_id=f"s{i}", name=f"s{i}")
    return Book(cfg, [TargetPosition(symbol=s, weight=0.1) for s in syms], list(syms), 100_000.0, {})


def _fallback(lists: list[list[str]]) -> list[str]:
    cols = Columns.build(SYMS, unit_values(PRICES, SPECS), SPECS)
    return size_books([_book(i, s) for i, s in enumerate(lists)], cols, TradingConfig()).fallback


def test_a_run_of_books_with_a_symbol_twice_all_fall_back():
    dup, plain = [SYMS[0], SYMS[1], SYMS[0]], [SYMS[0], SYMS[1]]
    assert _fallback([plain, dup, dup, dup, plain, plain]) == ["s1", "s2", "s3"]
    assert _fallback([dup, dup]) == ["s0", "s1"]
    assert _fallback([plain, plain, plain]) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(SYMS[:4]), max_size=4), st.integers(1, 3)), min_size=1,
                max_size=5))
def test_fallback_is_every_book_listing_a_symbol_twice(runs):
    lists = [syms for syms, n in runs for _ in range(n)]
    want = [f"s{i}" for i, s in enumerate(lists) if len(set(s)) < len(s)]
    assert _fallback(lists) == want
