"""Build the :class:`~brokers.base.Broker` of an account from its configuration (``brokers.yaml``).

The venue's client libraries are imported only for the kinds that need them
(``ib_async`` for ``ib``, ``ccxt`` for ``ccxt``), so a paper run needs neither.
Secrets are read here, once: a missing one is a
:class:`~brokers.base.BrokerConfigError` when the broker is built, never at the
first order.
"""

from __future__ import annotations

from brokers.base import Broker, BrokerConfigError, PriceSource
from brokers.config import CcxtAccount, IBAccount, Mode, SimAccount
from brokers.sim import BarSource, FundingSource, OpenSource, SimBroker
from brokers.sim_costs import CostModel
from bus.models import InstrumentSpec
from bus.store import Store


def build_broker(cfg: SimAccount | IBAccount | CcxtAccount, mode: Mode, *, instruments: dict[str, InstrumentSpec],
                 store: Store | None = None, prices: PriceSource | None = None, funding: FundingSource | None = None,
                 bars: BarSource | None = None, base_currency: str = "USD", opens: OpenSource | None = None) -> Broker:
    """The broker of account ``cfg`` for trading mode ``mode`` (``paper``/``live``).

    Args:
        instruments: configured instruments (the sim's venue rules; IB's secType,
            exchange, currency, minimum notional and leverage).
        store, prices: required for ``sim`` (where the account lives, as-of prices).
        funding, bars: optional for ``sim`` (perpetual funding; bars for resting limit orders).
        opens: optional for ``sim``: the next open a market order fills at (``fill_at: next_open``).

    Raises:
        BrokerConfigError: a missing secret, no port for the mode, a sim without store or prices.
    """
    name = cfg.account or "?"
    if isinstance(cfg, SimAccount):
        if store is None or prices is None:
            raise BrokerConfigError(f"account {name}: the paper broker needs a store and a price source")
        instruments = {**instruments, **cfg.instruments}
        costs = {s: CostModel(**c.model_dump()) for s, c in cfg.costs.items()}
        unknown = sorted((set(costs) | set(cfg.leverage)) - set(instruments))
        if unknown:
            raise BrokerConfigError(f"account {name}: costs/leverage for unknown instruments {unknown}")
        return SimBroker(store, name, prices, instruments, starting_cash=cfg.starting_cash, fee_bps=cfg.fee_bps,
                         slippage_bps=cfg.slippage_bps, mode=mode, base_currency=base_currency,
                         maker_fee_bps=cfg.maker_fee_bps, impact_bps=cfg.impact_bps,
                         impact_ref_notional=cfg.impact_ref_notional, costs=costs, leverage=cfg.leverage,
                         funding=funding if cfg.funding else None, bars=bars, fill_at=cfg.fill_at, opens=opens)
    if isinstance(cfg, IBAccount):
        port = cfg.ports.get(mode)
        if port is None:
            raise BrokerConfigError(f"account {name}: no port for mode {mode!r} (ports: {cfg.ports})")
        from brokers.ib import IBBroker

        return IBBroker(cfg.host, port, cfg.client_id, mode=mode, account=cfg.ib_account, instruments=instruments,
                        base_currency=base_currency, connect_timeout=cfg.connect_timeout,
                        request_timeout=cfg.request_timeout, order_wait=cfg.order_wait,
                        reconnect_attempts=cfg.reconnect_attempts, reconnect_wait=cfg.reconnect_wait,
                        market_data_type=cfg.market_data_type, as_of_tolerance_seconds=cfg.as_of_tolerance_seconds)
    if isinstance(cfg, CcxtAccount):
        from brokers.ccxt_exchange import CcxtBroker, make_exchange

        exchange = make_exchange(cfg, name)
        return CcxtBroker(exchange, name, mode, leverage=cfg.leverage, default_leverage=cfg.default_leverage,
                          margin_mode=cfg.margin_mode, symbols=cfg.symbols, market_slippage=cfg.market_slippage,
                          retries=cfg.retries, as_of_tolerance_seconds=cfg.as_of_tolerance_seconds)
    raise BrokerConfigError(f"account {name}: unknown kind {getattr(cfg, 'kind', '?')!r}")
