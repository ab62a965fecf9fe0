"""The day-by-day backtest on the live pipeline, its data horizon and its report."""
